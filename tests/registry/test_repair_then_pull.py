"""`tether fsck --repair` then `tether pull` restores what was removed, however it is named:
here a registered model's file, named by the registry's log and the run's record."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Tether, corrupt_object
from tether.api import Project


def test_a_repaired_registry_object_is_fetched_again(
    trained: str, project: Project, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    tether("remote", "add", "origin", str(tmp_path / "remote"))
    tether("model", "register", "clf", "--run", trained, "--path", "model.pkl")
    tether("push")
    oid = Project.open(repo).models.state().resolve("clf@v1").object
    corrupt_object(project.ws.store, oid)
    assert "removed 1 corrupt object" in tether("fsck", "--repair").output
    pulled = tether("pull").output
    assert "fetched 1 object(s)" in pulled
    assert "missing" not in tether("fsck").output
    assert Project.open(repo).ws.store.read_bytes(oid) == b"weights " * 20_000
