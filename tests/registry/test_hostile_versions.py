"""A model version comes from whoever registered it: `tether model get` and `tether.models.load`
write its files only inside the folder asked for. A version whose stored folder names a path
Tether would never write (climbing out, into .git, two names one filesystem takes for one file)
or links out of its folder is refused before anything is written; a symlinked folder on the way
is refused where the write happens. The attacker registers with Tether's internals; the victim
uses the CLI or the public loader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tether
from tether import models
from tether.api import Project
from tether.errors import UnsafePathError
from tether.hashing import hash_bytes
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry
from tether.registry import store


def register_forged(project: Project, run: str, entries: list[tuple[str, Any]]) -> str:
    """Version 1 of model ``churn``: a stored folder of ``entries`` (path, bytes or ("link",
    target)), registered as a build of the attacker's own would; the folder's id."""
    ws = project.ws
    rows = []
    for path, content in entries:
        if isinstance(content, tuple):
            target = content[1]
            rows.append(TreeEntry(path, hash_bytes(target.encode()), 0, SYMLINK_MODE, target))
        else:
            rows.append(TreeEntry(path, ws.store.put_bytes(content), len(content)))
    folder = ws.store.put_bytes(Tree.build(rows).data)
    record = ws.refs.get(f"runs/{run}")
    assert record is not None
    body = {
        "name": "churn", "version": 1, "object": folder, "path": "model", "run": run,
        "record": record[0], "description": "", "commit": None,
    }  # fmt: skip
    with store.writing(ws):
        store.append(ws, "model.register", body, sign=False)
        ws.refs.set("registry/churn/v1", [folder, record[0]])
    return folder


WEIGHTS = ("weights.bin", b"w" * 64)
HOSTILE: dict[str, tuple[list[tuple[str, Any]], str]] = {
    "a file that climbs out": ([WEIGHTS, ("../../evil.py", b"import os\n")], "climbs out"),
    "a file in git's hooks": ([WEIGHTS, (".git/hooks/pre-commit", b"#!/bin/sh\n")], "reserved"),
    "a file in .git spelled for HFS+": ([WEIGHTS, (".gi\u200ct/config", b"x")], "reserved"),
    "two files one filesystem takes for one": (
        [WEIGHTS, ("Weights.bin", b"v" * 64)],
        "the same file where case",
    ),
    "a file that is also a folder": (
        [WEIGHTS, ("weights.bin/x", b"x")],
        "as a file and as a folder",
    ),
    "a symlink to /etc": ([WEIGHTS, ("etc", ("link", "/etc"))], "only a relative link"),
    "a symlink that climbs out": ([WEIGHTS, ("sub/up", ("link", "../../.."))], "points outside"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_model_get_writes_nothing_outside_the_folder_asked_for(
    trained: str, project: Project, repo: Path, tether: Tether, tmp_path: Path, case: str
) -> None:
    entries, why = HOSTILE[case]
    register_forged(project, trained, entries)
    hooks = sorted(os.listdir(repo / ".git" / "hooks"))
    out = tether("model", "get", "churn@v1", "-o", ".", expect=4).output  # into the repository
    assert "model churn@v1" in out and why in out and "tether audit log --model churn" in out
    assert sorted(os.listdir(repo / ".git" / "hooks")) == hooks
    assert not (repo / "weights.bin").exists()  # nothing half-written: the good file neither
    assert not (tmp_path / "evil.py").exists() and not (repo / "etc").exists()
    out = tether("model", "get", "churn@v1", "-o", "serving", expect=4).output
    assert not (repo / "serving").exists()


def test_models_load_cannot_be_made_to_load_from_outside_its_folder(
    trained: str, project: Project, repo: Path
) -> None:
    register_forged(project, trained, [WEIGHTS, ("../../evil.py", b"import os\n")])
    with pytest.raises(UnsafePathError, match=r"model churn@v1 names the path '\.\./\.\./evil"):
        models.load("churn", "v1")
    assert not list((repo / ".tether").rglob("evil.py"))
    assert not (repo / ".tether" / "models" / "churn" / "v1").exists()


def test_model_get_never_writes_through_a_symlinked_folder_in_the_destination(
    trained: str, project: Project, repo: Path, tether: Tether, tmp_path: Path
) -> None:
    """The version is fine; the destination holds ``sub -> a folder elsewhere`` (planted there
    before): a release goes only into a fresh folder, so nothing is written through it."""
    inside = ("sub/latest", ("link", "../weights.bin"))  # a link that stays inside is fine
    register_forged(project, trained, [WEIGHTS, ("sub/more.bin", b"m" * 64), inside])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / "serving").mkdir()
    os.symlink(elsewhere, repo / "serving" / "sub")
    out = tether("model", "get", "churn@v1", "-o", "serving", expect=4).output
    assert "serving is not empty" in out
    assert os.listdir(elsewhere) == []
    (repo / "serving" / "sub").unlink()
    tether("model", "get", "churn@v1", "-o", "serving")  # the same version, once it is gone
    assert (repo / "serving" / "sub" / "more.bin").read_bytes() == b"m" * 64
    path, _ = models.load("churn", "v1")
    assert (path / "weights.bin").read_bytes() == b"w" * 64
