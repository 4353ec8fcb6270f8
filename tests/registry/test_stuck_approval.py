"""An approval that a failing gate refuses is not recorded, so the request never gets stuck:
once the gate passes, the same approver approves and the transition is made."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Tether
from tests.registry.conftest import People
from tether.api import Project


def test_an_approval_refused_by_a_gate_can_be_given_once_the_gate_passes(
    trained: str, people: People, repo: Path, tether: Tether, project: Project
) -> None:
    tether("model", "register", "model", "--run", trained, "--path", "model.pkl")
    tether("model", "policy", "apply")
    tether("model", "request", "model@v1", "--to", "production")
    # the team then requires a signed release: the open request meets it only once signed
    text = (repo / "tether.toml").read_text()
    text = text.replace('require = ["clean_tree",', 'require = ["signed", "clean_tree",')
    (repo / "tether.toml").write_text(text)
    tether("model", "policy", "apply")
    people.use("bob")
    out = tether("model", "approve", "model@v1", expect=4).output
    assert "your approval was not recorded" in out and "signed:" in out
    assert Project.open(repo).models.state().resolve("model@v1").stage is None
    assert all(not r.approvals for r in project.models.state().requests.values())
    tether("model", "sign", "model", "1")
    assert "now in production" in tether("model", "approve", "model@v1").output
