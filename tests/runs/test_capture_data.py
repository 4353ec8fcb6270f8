"""Tracked data edited but not re-added: the run records what it read, `diff` names it, and
`reproduce` restores those bytes."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import Tether, git, write_files
from tether.api import Project

TRAIN = """import tether
open('out.txt', 'w').write(open('data/a.csv').read().upper())
tether.log_output('out.txt')
"""


def test_edited_tracked_data_is_recorded_ranked_and_restored(
    repo: Path, project: Project, tether: Tether
) -> None:
    write_files(repo, {"train.py": TRAIN, "data/a.csv": "one\n", "data/b.csv": "two\n"})
    tether("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    pointer_id = project.ws.pointers()[0].ptr.id
    (repo / "data" / "a.csv").write_text("edited by hand\n")  # `tether status`: modified
    tether("run", "-n", "edited", "--", sys.executable, "train.py")
    (repo / "data" / "a.csv").write_text("one\n")  # back to what the pointer names
    tether("run", "-n", "clean", "--", sys.executable, "train.py")

    edited = project.get_run("edited")
    real = edited["data"]["inputs"]["data"]
    assert real != pointer_id and edited["data"]["modified"] == ["data"]
    assert edited["data"]["pointers_start"]["data"] == pointer_id  # the pointer, as it was
    assert project.get_run("clean")["data"]["modified"] == []

    d = project.diff_runs("edited", "clean")
    assert d.causes[0] == "tracked data data changed (1 files inside) (edited, not re-added)"
    assert "nondeterminism" not in tether("diff", "edited", "clean").output

    v = project.reproduce("edited")  # restores the edited bytes, not the pointer's
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)
    assert (repo / "data" / "a.csv").read_text() == "one\n"  # the user's tree is untouched
    again = project.get_run(str(v.reproduction))["code"]
    assert again["diff"] is None and not again["dirty"]  # the worktree's .tether link: no code


def test_tracked_data_missing_at_the_start_is_not_called_same(
    repo: Path, project: Project, tether: Tether
) -> None:
    write_files(repo, {"data/a.csv": "one\n"})
    tether("add", "data")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")
    script = "import os; print(os.path.exists('data'))"
    tether("run", "-n", "with", "--", sys.executable, "-c", script)
    (repo / "data" / "a.csv").unlink()
    (repo / "data").rmdir()
    tether("run", "-n", "without", "--", sys.executable, "-c", script)
    assert project.get_run("without")["data"]["missing"] == ["data"]
    d = project.diff_runs("with", "without")
    assert "tracked data data changed (missing from the work tree in B)" in d.causes
