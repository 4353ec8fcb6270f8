"""Reproducing someone else's run (issue 12): a teammate's malformed run record, pushed to the
shared remote, neither breaks ``tether pull`` nor ``tether reindex`` in another clone: the
record is named as unreadable and every other run is indexed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Tether, git, make_repo
from tether.api import Project
from tether.runs.record import dump_record

BAD = {
    "command": [1, 2],
    "tags": "ab",
    "metrics": {"m": 1},
    "data": "x",
}


@pytest.mark.parametrize("field", sorted(BAD))
def test_a_teammate_s_malformed_run_record_does_not_break_pull_or_reindex(
    repo: Path, tmp_path: Path, tether: Tether, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    remote = tmp_path / "remote"
    (repo / "x.txt").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    with Project.open(repo) as project:
        project.add_remote("origin", str(remote))
        with project.start_run(name="good"):
            pass
        with project.start_run(name="bad") as run:
            bad_id = run.id
        record = project.get_run("bad")
        body = {k: v for k, v in record.items() if k not in ("tether", "kind", "format", "links")}
        body.pop("record_id", None)
        doc = json.loads(dump_record("run", body))
        doc[field] = BAD[field]  # the teammate's Tether wrote it so
        oid = project.ws.store.put_bytes(json.dumps(doc).encode())
        project.ws.refs.set(f"runs/{bad_id}", [oid])
        project.push()
    clone = make_repo(tmp_path / "clone")
    subprocess.run(["git", "pull", "-q", str(repo), "main"], cwd=clone, check=True)
    monkeypatch.chdir(clone)
    Project.init(clone)
    tether("remote", "add", "origin", str(remote))
    pulled = tether("pull", expect=0).output  # not 70: one bad record stops nothing
    assert "Traceback" not in pulled
    out = tether("reindex", expect=0).output
    assert bad_id[:8] in out  # named as unreadable
    names = tether("runs", "list", expect=0).output
    assert "good" in names
