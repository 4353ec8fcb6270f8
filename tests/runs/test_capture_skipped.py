"""An untracked file too big for the recorded diff: warned about at run time, named in the
record with size and id, compared by `diff`, and named by `reproduce` when it lacks it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, Tether, git, write_files
from tether.api import Project

TRAIN = """import os, tether
open('out.txt', 'w').write(str(os.path.getsize('big.csv')))
tether.log_output('out.txt')
"""


def test_a_big_untracked_file_is_warned_named_diffed_and_blamed(
    repo: Path, project: Project, tether: Tether
) -> None:
    project.config_set("runs.diff_max_file", "1000")
    write_files(repo, {"train.py": TRAIN})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")  # the run's own output is no code change
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")
    write_files(repo, {"big.csv": "1,2,3\n" * 1000})
    done = subprocess.run(
        [str(BIN / "tether"), "run", "-n", "first", "--", sys.executable, "train.py"],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "warning: untracked big.csv (6000 bytes) is over runs.diff_max_file" in done.stderr
    write_files(repo, {"big.csv": "1,2,3\n" * 1001})
    tether("run", "-n", "second", "--", sys.executable, "train.py")

    skipped = project.get_run("first")["code"]["skipped"]["big.csv"]
    assert skipped["size"] == 6000 and skipped["id"].startswith("blake3:")
    assert not project.ws.store.has(skipped["id"])  # named, never stored

    d = project.diff_runs("first", "second")
    assert "untracked big.csv (too big for the diff) differs: 6000 bytes → 6006 bytes" in d.causes
    assert d.code.skipped["big.csv"][0] == skipped
    text = tether("diff", "first", "second").output
    assert "Not captured" in text and "nondeterminism" not in text
    # the same file both times: nothing differs that was captured, but it was not captured
    tether("run", "-n", "third", "--", sys.executable, "train.py")
    text = tether("diff", "second", "third").output
    assert "not everything was captured" in text and "nondeterminism" not in text

    v = project.reproduce("first")  # the rebuilt worktree has no big.csv: say so
    assert v.verdict != "REPRODUCED"
    assert "lacked untracked big.csv (6000 bytes)" in v.reason


def test_a_file_skipped_under_one_limit_and_stored_under_a_higher_one_is_compared_by_content(
    repo: Path, project: Project, tether: Tether, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_files(repo, {"train.py": TRAIN})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "train")
    write_files(repo, {"big.csv": "1,2,3\n" * 1000})
    monkeypatch.setenv("TETHER_RUNS__DIFF_MAX_FILE", "1000")
    tether("run", "-n", "low", "--", sys.executable, "train.py")
    monkeypatch.setenv("TETHER_RUNS__DIFF_MAX_FILE", "100000")
    tether("run", "-n", "high", "--", sys.executable, "train.py")  # big.csv in its diff now
    d = project.diff_runs("low", "high")
    assert d.code.same_patch and not d.code.skipped  # the same file, the same code
    assert not [c for c in d.causes if c.startswith(("code", "untracked"))]
    write_files(repo, {"big.csv": "1,2,3\n" * 1001})
    tether("run", "-n", "higher", "--", sys.executable, "train.py")
    d = project.diff_runs("low", "higher")
    assert d.code.same_patch  # nothing else differs
    said = "untracked big.csv (too big for the diff) differs: 6000 bytes → 6006 bytes in its diff"
    assert d.causes == [said]
    assert "absent" not in tether("diff", "low", "higher").output
