"""`tether run --check-determinism` with the --dep and --out a user declares, and a command that
logs nothing Tether could compare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, git, write_files
from tether.api import Project

WRITES = """
import random, sys
rows = open("rows.txt").read().split()
noise = random.random() if "--noisy" in sys.argv else 0
open("out.txt", "w").write(f"{sum(int(r) for r in rows) + noise}\\n")
"""
CHECK = ["run", "--check-determinism", "--dep", "rows.txt", "--out", "out.txt", "--"]


def tether_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def writes(repo: Path) -> None:
    write_files(repo, {"writes.py": WRITES, "rows.txt": "1 2\n", "quiet.py": "print('hi')\n"})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "writes")


def test_an_unseeded_out_declared_with_out_is_caught(repo: Path) -> None:
    writes(repo)
    loose = tether_cli(repo, *CHECK, sys.executable, "writes.py", "--noisy")
    assert loose.returncode == 1, loose.stdout + loose.stderr
    assert "NOT deterministic" in loose.stdout and "output out.txt" in loose.stdout


def test_a_deterministic_out_is_compared_and_its_dep_recorded(repo: Path) -> None:
    writes(repo)
    same = tether_cli(repo, *CHECK, sys.executable, "writes.py")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "deterministic" in same.stdout and "output out.txt" in same.stdout
    with Project.open(repo) as project:
        runs = project.search_runs("tags.determinism_check != ''")
        records = [project.get_run(r.id) for r in runs]
    assert len(records) == 2
    assert all(set(r["data"]["inputs"]) == {"rows.txt"} for r in records)
    assert records[0]["data"]["outputs"] == records[1]["data"]["outputs"] != {}


def test_a_second_run_that_writes_nothing_is_not_hidden_by_the_first(repo: Path) -> None:
    writes(repo)
    once = (
        "import os\n"
        "if not os.path.exists('ran-once'):\n"
        "    open('ran-once', 'w').close(); open('out.txt', 'w').write('1')\n"
    )
    write_files(repo, {"once.py": once})
    with open(repo / ".gitignore", "a") as f:
        f.write("ran-once\n")
    proc = tether_cli(
        repo, "run", "--check-determinism", "--out", "out.txt", "--", sys.executable, "once.py"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "output out.txt" in proc.stdout
    assert (repo / "out.txt").read_text() == "1"  # what the first run wrote stays


def test_a_command_that_records_nothing_says_so(repo: Path) -> None:
    writes(repo)
    quiet = tether_cli(repo, "run", "--check-determinism", "--", sys.executable, "quiet.py")
    assert quiet.returncode == 3, quiet.stdout + quiet.stderr
    assert "nothing to compare" in quiet.stdout and "--out" in quiet.stdout
