"""A run record comes from anyone who can push: `tether reproduce` of one that names a path Tether
would never write (outside the repository, into .git or .tether, through a symlink the commit
holds) refuses it, naming the run and the entry, before anything is written.

The attacker forges the record with Tether's own internals (as a build of their own would); the
victim only runs the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import BIN, Tether, git, make_repo, snapshot, write_files
from tether._paths import problem
from tether.api import Project
from tether.errors import UnsafePathError
from tether.repro.restore import check_record
from tether.runs import catalog
from tether.runs.record import dump_record, load_record

MAKE = "open('out.txt', 'w').write('made\\n')\n"


def tether_cli(cwd: Path, *argv: str) -> None:
    proc = subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def honest_run(repo: Path, name: str = "honest") -> None:
    """A commit with make.py and a finished run of it: what the forgery starts from."""
    write_files(repo, {"make.py": MAKE})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "make")
    tether_cli(repo, "run", "-n", name, "--out", "out.txt", "--", sys.executable, "make.py")


def forge(root: Path, base: str, change: dict[str, Any]) -> str:
    """A run record like ``base``'s with ``change`` merged into it (``data`` and ``code`` key by
    key), sealed under a new id as a tampered Tether would seal it; the new id."""
    with Project.open(root) as project:
        ws = project.ws
        run_id = catalog.resolve(ws, base)
        ref = ws.refs.get(f"runs/{run_id}")
        assert ref is not None
        doc = load_record(ws.store.read_bytes(ref[0]))
        body = {k: v for k, v in doc.items() if k not in ("tether", "kind", "format", "links")}
        for key in ("data", "code"):
            body[key] = {**(body.get(key) or {}), **change.pop(key, {})}
        forged_id = run_id[:-4] + ("beef" if run_id[-4:] != "beef" else "cafe")
        body.update(change, id=forged_id, name="forged")
        oid = ws.store.put_bytes(dump_record("run", body, doc["links"]))
        ws.refs.set(f"runs/{forged_id}", [oid])
        catalog.sync_index(ws)
    return forged_id


def a_blob(root: Path, data: bytes = b"planted\n") -> str:
    with Project.open(root) as project:
        return project.ws.store.put_bytes(data)


def untouched(repo: Path) -> dict[str, Any]:
    """The work tree and git's own files (hooks, config): what a refusal must leave alone."""
    return {k: v for k, v in snapshot(repo).items() if not k.startswith(".tether/")}


HOSTILE = {
    "an input that climbs out": ("data", "inputs", "../outside.txt"),
    "an input into git's hooks": ("data", "inputs", ".git/hooks/pre-commit"),
    "an input into .tether": ("data", "inputs", ".tether/config.toml"),
    "an input into .git spelled for NTFS": ("data", "inputs", "GIT~1/hooks/pre-commit"),
    "a missing path that is absolute": ("data", "missing", "/etc/hostname"),
    "an out that climbs out": ("declared", "outs", "../victim.txt"),
    "a folder it started in outside": ("cwd", None, "../../elsewhere"),
    "a submodule outside": ("code", "submodules", "../../evil"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_run_record_naming_a_path_outside_is_refused_before_anything_is_written(
    repo: Path, tether: Tether, tmp_path: Path, case: str
) -> None:
    honest_run(repo)
    section, key, path = HOSTILE[case]
    oid = a_blob(repo)
    change: dict[str, Any]
    if section == "cwd":
        change = {"cwd": path}
    elif key == "inputs":
        change = {"data": {"inputs": {path: oid}}}
    elif key == "missing":
        change = {"data": {"missing": [path]}}
    elif section == "declared":
        change = {"declared": {"deps": [], "outs": [path]}}
    else:
        change = {"code": {"submodules": [{"path": path, "commit": "0" * 40}]}}
    forged = forge(repo, "honest", change)
    before = untouched(repo)
    out = tether("reproduce", forged, expect=4).output
    assert f"run forged ({forged[:13]})" in out and repr(path) in out
    assert "Tether refuses" in out and "tether runs show" in out
    assert untouched(repo) == before  # nothing half-written: no hook, no file, no folder
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "victim.txt").exists()
    assert git(repo, "worktree", "list").count("\n") == 1  # no rebuilt tree left behind
    with Project.open(repo) as project:
        assert sorted(r.name for r in project.search_runs()) == ["forged", "honest"]  # no re-run


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"missing": ["link/precious.txt"]}},  # removed through the link
        {"cwd": "link/made-by-reproduce"},  # a folder made through the link
    ],
    ids=["a missing path", "the folder it started in"],
)
def test_a_symlink_in_the_commit_cannot_lead_a_reproduction_outside(
    repo: Path, tether: Tether, tmp_path: Path, change: dict[str, Any]
) -> None:
    """The paths look fine; the commit holds ``link -> <a folder of the victim's>``. The write
    is checked where it happens: the folder on the way is a symlink, so nothing is removed
    or made there."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "precious.txt").write_text("the victim's own\n")
    os.symlink(precious, repo / "link")
    honest_run(repo)  # commits the link with make.py
    forged = forge(repo, "honest", change)
    out = tether("reproduce", forged, expect=4).output
    assert "link is a symlink" in out
    assert os.listdir(precious) == ["precious.txt"]
    assert (precious / "precious.txt").read_text() == "the victim's own\n"
    assert git(repo, "worktree", "list").count("\n") == 1


def test_a_forged_run_pulled_from_a_teammate_cannot_write_outside(
    repo: Path, tether: Tether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: Mallory pushes a forged run to the shared remotes; the victim pulls it and
    reproduces it."""
    honest_run(repo)
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    tether("remote", "add", "origin", str(tmp_path / "data-remote"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "remote")
    git(repo, "push", "-q", "origin", "main")
    tether("push")  # the honest run travels with the data
    mallory = make_repo(tmp_path / "mallory")
    git(mallory, "pull", "-q", str(origin), "main")
    Project.init(mallory)
    tether_cli(mallory, "pull")
    change = {"data": {"inputs": {"../../outside.txt": a_blob(mallory, b"#!/bin/sh\n")}}}
    forged = forge(mallory, "honest", change)
    tether_cli(mallory, "push")
    tether("pull")
    out = tether("reproduce", forged, expect=4).output
    assert "'../../outside.txt'" in out and "climbs out" in out
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path.parent / "outside.txt").exists()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
PATHS = st.sampled_from(["a.csv", "d/x", "../x", "/etc/x", ".git/hooks/x", ".TETHER/c", "."])
PATH = PATHS | st.text(max_size=12)
DATA = st.fixed_dictionaries(
    {},
    optional={
        "inputs": st.dictionaries(PATH, st.text(max_size=4)) | JSON,
        "outputs": st.dictionaries(PATH, st.text(max_size=4)) | JSON,
        "missing": st.lists(PATH, max_size=3) | JSON,
    },
)
RECORD = st.fixed_dictionaries(
    {"id": st.text(max_size=4), "name": st.text(max_size=4)},
    optional={
        "data": DATA | JSON,
        "declared": st.fixed_dictionaries({"deps": st.lists(PATH), "outs": st.lists(PATH)}) | JSON,
        "cwd": PATH | JSON,
        "code": st.fixed_dictionaries(
            {"submodules": st.lists(st.fixed_dictionaries({"path": PATH}) | JSON, max_size=2)}
        )
        | JSON,
    },
)


@given(RECORD)
def test_any_run_record_has_its_paths_passed_or_is_refused(record: dict[str, Any]) -> None:
    """A record of any shape: every path it would have written passes git's checks, or it is
    refused with an UnsafePathError; never another exception."""
    try:
        check_record(record)
    except UnsafePathError as exc:
        assert "Tether refuses" in str(exc)
        return
    data = record.get("data")
    inputs = data.get("inputs") if isinstance(data, dict) else None
    for path in inputs if isinstance(inputs, dict) else []:
        assert os.path.isabs(path) or problem(path) is None
    cwd = record.get("cwd")
    assert cwd in (None, ".") or problem(str(cwd)) is None
