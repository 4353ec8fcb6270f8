"""A repository with a trained model recorded by a run, and keys for several people."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import git, write_files
from tether import keyconfig, signing
from tether.api import Project
from tether.runs import live

POLICY = """
[groups]
leads = ["bob@example.com"]

[registry.policy.production]
approvals = 1
self_approval = false
approvers = ["group:leads", "ci@example.com"]
require = ["clean_tree", "metric:accuracy>=0.8"]
"""


@dataclass
class People:
    keys: dict[str, signing.KeyInfo]
    use: Callable[[str], None]  # act as this person (their key signs)


@pytest.fixture
def trained(project: Project, repo: Path) -> str:
    """A run (at a clean commit) that wrote model.pkl and scored 0.9; its id."""
    write_files(repo, {"train.py": "print('training')\n"})
    with (repo / ".gitignore").open("a") as f:  # next to tether init's .tether/
        f.write("model.pkl\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feat: train")
    (repo / "model.pkl").write_bytes(b"weights " * 20_000)  # 160 KB: a loose object
    with live.start(project.ws, name="train", command=["python", "train.py"]) as run:
        run.log_output("model.pkl")
        run.log_metric("accuracy", 0.9)
        run_id = run.id
    return run_id


@pytest.fixture
def people(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> People:
    """alice, bob (a lead), carol and ci trusted as approvers; mallory not trusted."""
    keys = {}
    for who in ("alice", "bob", "carol", "ci", "mallory"):
        email = f"{who}@example.com"
        keys[who] = signing.generate(email, tmp_path / "keys" / who)
        if who != "mallory":
            roles = ["approver"]
            keyconfig.trust_key(repo / "tether.toml", keys[who].public_pem, email, roles)
    with (repo / "tether.toml").open("a") as f:
        f.write(POLICY)

    def use(who: str) -> None:
        monkeypatch.setenv("TETHER_SIGNING_KEY", str(keys[who].private_path))

    use("alice")
    return People(keys, use)
