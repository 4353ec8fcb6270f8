"""The run cache travels with the remotes, so an entry is content from whoever pushed it: one that
names a path Tether would never write, or a stored folder that climbs out or links out, is
refused before anything is written, with the way out; one naming outs the stage does not declare
restores nothing. The attacker plants entries with Tether's internals; the victim runs the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, Tether, git, make_repo, snapshot, write_files
from tether.api import Project
from tether.hashing import hash_bytes
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry
from tether.pipelines.plan import cache_key, plan
from tether.runs.record import dump_record

PIPELINE = """
stages:
  make:
    cmd: mkdir -p result && cp input.txt result/copy.txt
    deps: [input.txt]
    outs: [result]
"""


def pipeline(repo: Path, tether: Tether) -> None:
    """The stage ran once on input v1; input.txt is now v2, so the stage is stale."""
    write_files(repo, {"pipeline.yaml": PIPELINE, "input.txt": "v1\n"})
    tether("repro")
    write_files(repo, {"input.txt": "v2\n"})


def plant(root: Path, outs: dict[str, Any]) -> None:
    """A run-cache entry for stage ``make`` as it stands now, restoring ``outs``: each value an
    object id, or a list of tree entries (path, bytes or ("link", target)) stored as a folder."""
    with Project.open(root) as project:
        ws = project.ws
        ids = {}
        for path, value in outs.items():
            if isinstance(value, str):
                ids[path] = value
                continue
            entries = []
            for name, content in value:
                if isinstance(content, tuple):
                    target = content[1]
                    entries.append(
                        TreeEntry(name, hash_bytes(target.encode()), 0, SYMLINK_MODE, target)
                    )
                else:
                    entries.append(TreeEntry(name, ws.store.put_bytes(content), len(content)))
            ids[path] = ws.store.put_bytes(Tree.build(entries).data)
        (sp,) = [s for s in plan(ws, ["make"]).stages if s.stage.name == "make"]
        body = {"stage": "make", "cmd": sp.stage.cmd, "outs": ids, "metrics_files": {}}
        oid = ws.store.put_bytes(dump_record("runcache", {**body, "time": 0.0}, ids.values()))
        ws.refs.set(f"runcache/{cache_key(sp)}", [oid])


def blob(root: Path, data: bytes) -> str:
    with Project.open(root) as project:
        return project.ws.store.put_bytes(data)


def worktree(repo: Path) -> dict[str, Any]:
    """The work tree and git's hooks and config (not its objects: a pipeline run records its
    code before its stages, as git objects)."""
    return {
        k: v for k, v in snapshot(repo).items() if not k.startswith((".tether/", ".git/objects/"))
    }


GOOD = [("copy.txt", b"v2\n")]
HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "an out that climbs out": ({"result": GOOD, "../outside.txt": b"x"}, "climbs out"),
    "an out in a nested repository's hooks": (
        {"result": GOOD, "vendor/lib/.git/hooks/pre-commit": b"#!/bin/sh\n"},
        "reserved for git and Tether",
    ),
    "a folder entry that climbs out": (
        {"result": [*GOOD, ("../../evil.py", b"import os\n")]},
        "climbs out",
    ),
    "a folder entry that links out": (
        {"result": [*GOOD, ("etc", ("link", "/etc"))]},
        "only a relative link that stays inside",
    ),
    "a folder entry that links out by dots": (
        {"result": [*GOOD, ("up", ("link", "../../.."))]},
        "points outside",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_run_cache_entry_cannot_write_outside_its_outs(
    repo: Path, tether: Tether, tmp_path: Path, case: str
) -> None:
    pipeline(repo, tether)
    outs, why = HOSTILE[case]
    plant(repo, {p: v if isinstance(v, list) else blob(repo, v) for p, v in outs.items()})
    before = worktree(repo)
    out = tether("repro", expect=4).output
    assert "the run-cache entry" in out and "stage 'make'" in out and why in out
    assert worktree(repo) == before  # nothing half-written: result/ is still v1's
    assert (repo / "result" / "copy.txt").read_text() == "v1\n"
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "evil.py").exists()
    assert not (repo / "vendor").exists()
    # the way out the message gives: the stage runs, and its own entry replaces the planted one
    tether("repro", "--no-run-cache", "make")
    assert (repo / "result" / "copy.txt").read_text() == "v2\n"
    write_files(repo, {"input.txt": "v1\n"})
    assert "restored from the run cache" in tether("repro").output
    write_files(repo, {"input.txt": "v2\n"})
    assert "restored from the run cache" in tether("repro").output
    assert (repo / "result" / "copy.txt").read_text() == "v2\n"


def test_a_run_cache_entry_restores_only_the_outs_its_stage_declares(
    repo: Path, tether: Tether
) -> None:
    pipeline(repo, tether)
    plant(repo, {"result": GOOD, ".github/workflows/evil.yml": blob(repo, b"on: push\n")})
    assert "restored from the run cache" not in tether("repro").output  # it ran
    assert not (repo / ".github").exists()
    assert (repo / "result" / "copy.txt").read_text() == "v2\n"


def test_a_planted_run_cache_entry_pulled_from_a_teammate_is_refused(
    repo: Path, tether: Tether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: Mallory pushes a real change of input.txt and, for the stage's new key, a
    run-cache entry whose folder climbs out; the victim pulls both and runs `tether repro`."""
    import subprocess

    def cli(cwd: Path, *argv: str) -> None:
        proc = subprocess.run([str(BIN / "tether"), *argv], cwd=cwd, capture_output=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    write_files(repo, {"pipeline.yaml": PIPELINE, "input.txt": "v1\n"})
    tether("repro")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    tether("remote", "add", "origin", str(tmp_path / "data-remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    git(repo, "push", "-q", "origin", "main")
    tether("push")
    mallory = make_repo(tmp_path / "mallory")
    git(mallory, "pull", "-q", str(origin), "main")
    Project.init(mallory)
    cli(mallory, "pull")
    write_files(mallory, {"input.txt": "v2\n"})
    git(mallory, "commit", "-qam", "input v2")
    git(mallory, "push", "-q", str(origin), "main")
    plant(mallory, {"result": [*GOOD, ("../../evil.py", b"import os\n")]})
    cli(mallory, "push")
    git(repo, "pull", "-q", "origin", "main")
    tether("pull")
    out = tether("repro", expect=4).output
    assert "'../../evil.py'" in out and "--no-run-cache make" in out
    assert not (tmp_path / "evil.py").exists()
    assert (repo / "result" / "copy.txt").read_text() == "v1\n"
