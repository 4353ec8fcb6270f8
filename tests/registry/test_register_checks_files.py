"""A version is only what `tether model get` will write: `tether model register` checks the
run's files as `get` does and refuses, naming the entry, a version it would later refuse to
write; one registered before that check (or forged into the log) is refused by `get` and
`tether.models.load` saying its files are unsafe, not that there is no such version. The
attacker crafts the run with Tether's internals; the victim uses the CLI or the public loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tether, git
from tests.registry.test_hostile_versions import WEIGHTS, register_forged
from tether import models
from tether.api import Project
from tether.errors import UnsafePathError
from tether.hashing import hash_bytes
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry
from tether.runs import live
from tether.runs.journal import text


def crafted_run(project: Project, artifacts: dict[str, list[tuple[str, Any]] | bytes]) -> str:
    """A run whose record names each artifact (name -> a stored folder of (path, bytes or
    ("link", target)) entries, or a file's bytes) as the attacker wrote them; its id."""
    ws = project.ws
    with live.start(ws, name="train", command=["python", "train.py"]) as run:
        for name, content in artifacts.items():
            if isinstance(content, bytes):
                oid = ws.store.put_bytes(content)
            else:
                rows = []
                for path, data in content:
                    if isinstance(data, tuple):
                        link = hash_bytes(data[1].encode())
                        rows.append(TreeEntry(path, link, 0, SYMLINK_MODE, data[1]))
                    else:
                        rows.append(TreeEntry(path, ws.store.put_bytes(data), len(data)))
                oid = ws.store.put_bytes(Tree.build(rows).data)
            run._journal.event("a", text(name), oid)  # as a record from elsewhere would say
        run_id = run.id
    return run_id


UNSAFE: dict[str, tuple[list[tuple[str, Any]], str, str]] = {
    "a folder that climbs out": ([WEIGHTS, ("../..", b"x")], "'../..'", "climbs out"),
    "a file in git's hooks": (
        [WEIGHTS, (".git/hooks/pre-commit", b"#!/bin/sh\n")],
        "'.git/hooks/pre-commit'",
        "reserved",
    ),
    "two names one filesystem takes for one": (
        [("a", b"1"), ("A", b"2")],
        "'A'",
        "the same file where case",
    ),
    "a symlink out of the folder": (
        [WEIGHTS, ("sub/up", ("link", "../../.."))],
        "'sub/up'",
        "points outside",
    ),
    "a NUL in a name": ([WEIGHTS, ("we\x00ights", b"x")], "'we\\x00ights'", "control character"),
}


@pytest.mark.parametrize("case", UNSAFE, ids=list(UNSAFE))
def test_model_register_refuses_a_version_whose_files_model_get_would_refuse(
    project: Project, repo: Path, tether: Tether, case: str
) -> None:
    entries, entry, why = UNSAFE[case]
    run = crafted_run(project, {"model": entries})
    out = tether("model", "register", "churn", "--run", run, "--path", "model", expect=4).output
    assert entry in out and why in out and "registers no version" in out
    assert "churn" not in tether("model", "list").output  # nothing was recorded
    assert "churn@v1" not in git(repo, "tag", "--list")


def test_model_register_refuses_a_file_artifact_whose_name_is_unsafe(
    project: Project, tether: Tether
) -> None:
    run = crafted_run(project, {"..": b"w" * 64})
    out = tether("model", "register", "churn", "--run", run, "--path", "..", expect=4).output
    assert "'..'" in out and "registers no version" in out
    assert "churn" not in tether("model", "list").output


def test_model_register_refuses_an_empty_path_as_a_usage_error(
    project: Project, tether: Tether
) -> None:
    run = crafted_run(project, {"": b"w" * 64})  # a record that names an artifact ""
    out = tether("model", "register", "churn", "--run", run, "--path", "", expect=2).output
    assert "path is empty" in out
    assert "churn" not in tether("model", "list").output


def test_model_register_still_registers_a_safe_folder_with_an_inner_link(
    project: Project, tether: Tether
) -> None:
    run = crafted_run(project, {"model": [WEIGHTS, ("sub/latest", ("link", "../weights.bin"))]})
    tether("model", "register", "churn", "--run", run, "--path", "model")
    path, _ = models.load("churn", "v1")
    assert (path / "weights.bin").read_bytes() == b"w" * 64


def test_model_get_and_load_say_a_forged_versions_files_are_unsafe_not_that_it_is_missing(
    trained: str, project: Project, tether: Tether, repo: Path
) -> None:
    register_forged(project, trained, [WEIGHTS, (".git/hooks/pre-commit", b"#!/bin/sh\n")])
    out = tether("model", "get", "churn@v1", "-o", "serving", expect=4).output
    assert "'.git/hooks/pre-commit'" in out and "files are unsafe" in out
    assert "no such version" not in out
    with pytest.raises(UnsafePathError, match="files are unsafe") as caught:
        models.load("churn", "v1")
    assert "no such version" not in str(caught.value)
    assert not (repo / "serving").exists()
