"""A script under `tether run` that starts runs of its own (`tether.start_run()` inside: a child
run per trial) is reproduced with its children: each child of the reproduction is judged
against the original's child of the same name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, git, write_files
from tether.api import Project

SWEEP = """
import os, tether
tether.log_metric("trials", 3)
for name, loss in (("trial-a", 1.0), ("trial-b", float(os.environ.get("LOSS_B", "2"))),
                   ("trial-a", 5.0)):
    with tether.start_run(name=name):
        tether.log_metric("loss", loss)
"""


def swept(repo: Path) -> None:
    write_files(repo, {"sweep.py": SWEEP})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "sweep")
    argv = [str(BIN / "tether"), "run", "-n", "sweep", "--", sys.executable, "sweep.py"]
    subprocess.run(argv, cwd=repo, check=True, capture_output=True)


def test_a_child_run_that_comes_out_different_makes_the_verdict_different(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept(repo)
    with Project.open(repo) as project:
        sweep = project.get_run("sweep")
        kids = project.search_runs(f"parent = '{sweep['id']}'")
        assert sorted(k.name for k in kids) == ["trial-a", "trial-a", "trial-b"]
        same = project.reproduce("sweep")
        assert same.verdict == "REPRODUCED", same.reason
        assert {m.key for m in same.metrics} == {
            "trials", "trial-a[1]:loss", "trial-a[2]:loss", "trial-b:loss",
        }  # fmt: skip
        monkeypatch.setenv("LOSS_B", "3")  # the second trial comes out different this time
        v = project.reproduce("sweep")
        assert v.verdict == "DIFFERENT", v.reason
        assert [m.key for m in v.metrics if not m.ok] == ["trial-b:loss"]
        loose = project.reproduce("sweep", tolerances={"trial-b:loss": 0.6})
    assert loose.verdict == "REPRODUCED", loose.reason
    assert "names no metric" not in loose.reason


def test_a_child_run_is_reproduced_through_the_run_that_started_it(repo: Path) -> None:
    """`tether reproduce trial-a` (the newest, the second of two) once re-ran the script and
    compared the first trial-a it made with it: DIFFERENT for a deterministic script."""
    swept(repo)
    with Project.open(repo) as project:
        v = project.reproduce("trial-a")
        assert v.verdict == "FAILED" and v.reproduction is None
        assert "trial-a is a run that sweep" in v.reason and "reproduce sweep" in v.reason
