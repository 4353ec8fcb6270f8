"""The data a reproduction starts from is what the run had: tracked data the run lacked stays
missing, and inputs another clone pushed are fetched whole (a folder's files, not only its
manifest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, git, write_files
from tether.api import Project

LOOK = """
import os
seen = open("data/a.csv", "rb").read() if os.path.exists("data") else b"no data"
open("out.txt", "wb").write(seen[:64])
"""


def tether_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def tracked(repo: Path, a_csv: bytes) -> None:
    write_files(repo, {"look.py": LOOK, "data/a.csv": a_csv, "data/b.csv": "x\n"})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    assert tether_cli(repo, "add", "data").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "data")


def test_tracked_data_missing_when_the_run_started_stays_missing(repo: Path) -> None:
    tracked(repo, b"1,2\n")
    shutil.rmtree(repo / "data")
    argv = ["--out", "out.txt", "--", sys.executable, "look.py"]
    assert tether_cli(repo, "run", "-n", "L3", *argv).returncode == 0
    assert (repo / "out.txt").read_bytes() == b"no data"
    with Project.open(repo) as project:
        assert project.get_run("L3")["data"]["missing"] == ["data"]
        v = project.reproduce("L3")
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_a_second_clone_fetches_every_file_of_an_input_folder(repo: Path, tmp_path: Path) -> None:
    """The clone has the folder's manifest (a fetch stopped after it) but not its files: the
    reproduction fetches the rest from the remote, it does not say the inputs are gone."""
    tracked(repo, b"1,2\n")
    assert tether_cli(repo, "remote", "add", "origin", str(tmp_path / "remote")).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "remote")
    write_files(repo, {"data/a.csv": os.urandom(2_000_000)})  # edited, not added again
    argv = ["--out", "out.txt", "--", sys.executable, "look.py"]
    assert tether_cli(repo, "run", "-n", "R2", *argv).returncode == 0
    assert tether_cli(repo, "push").returncode == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "config", "user.email", "test@example.com")  # the same person's second clone
    assert tether_cli(clone, "pull").returncode == 0
    with Project.open(clone) as project:
        edited = project.get_run("R2")["data"]["inputs"]["data"]
        big = project.ws.store.load_tree(edited).under("a.csv").blob_ids()
        (blob,) = big
        path = project.ws.store.loose_path(blob)
        assert path is not None  # a big file travels loose
        os.chmod(path, 0o644)
        path.unlink()  # as a fetch interrupted after the manifest leaves the cache
    proc = tether_cli(clone, "reproduce", "R2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REPRODUCED" in proc.stdout
