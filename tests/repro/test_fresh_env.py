"""`tether reproduce --env fresh`: the run again in a new virtual environment built from its
recorded packages (pinned, installed for real from the package index, as a user would)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import BIN, git, write_files
from tether.api import Project

SCRIPT = """
import sys, tether
tether.seed(5)
open("out.txt", "w").write(sys.prefix + "\\n")
tether.log_output("out.txt")
tether.log_metric("python", float(sys.version_info[1]))
"""


@pytest.mark.slow
def test_a_run_reproduced_in_a_fresh_environment(repo: Path) -> None:
    write_files(repo, {"job.py": SCRIPT})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "job")
    argv = [str(BIN / "tether"), "run", "-n", "job", "--", sys.executable, "job.py"]
    subprocess.run(argv, cwd=repo, check=True, capture_output=True)
    with Project.open(repo) as project:  # tether itself is installed from its folder
        v = project.reproduce("job", modes={"out.txt": "none"}, env="fresh", allow_sources=True)
        assert v.verdict == "REPRODUCED", v.reason
        fresh = v.fresh_env
        assert fresh is not None and fresh.unpinned == []
        assert fresh.packages["blake3"] == version("blake3")  # pinned as recorded
    with Project.open(repo) as project:  # a new look at the cache: the re-run added a pack
        again = project.get_run(v.reproduction or "")
        made = project.ws.store.read_bytes(again["data"]["outputs"]["out.txt"])
    rerun_prefix = made.decode().strip()  # the re-run ran in the fresh environment
    assert rerun_prefix == fresh.root and not Path(fresh.root).exists()  # removed afterwards
    assert v.drift is not None and not v.drift.changed and not v.drift.removed


def shell_script(repo: Path, body: str) -> None:
    write_files(repo, {"c.sh": f"#!/bin/sh\nexec {sys.executable} inner.py\n", "inner.py": body})
    (repo / "c.sh").chmod(0o755)
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c.sh")
    argv = [str(BIN / "tether"), "run", "-n", "CSH", "--out", "out.txt", "--", "./c.sh"]
    subprocess.run(argv, cwd=repo, check=True, capture_output=True)


def test_a_shell_script_that_execs_its_own_python_is_not_said_to_run_fresh(repo: Path) -> None:
    """`c.sh` execs Tether's interpreter by path: the fresh environment is never used, and no
    one can tell from outside. The verdict says so."""
    shell_script(repo, "open('out.txt', 'w').write('1')")
    with Project.open(repo) as project:
        v = project.reproduce("CSH", env="fresh")
    assert v.verdict == "REPRODUCED", v.reason
    assert "may not have run in the fresh environment" in v.reason


def test_a_rerun_known_to_have_left_the_fresh_environment_fails(repo: Path) -> None:
    """The re-run imports tether (here only when it is a fresh environment's re-run), so its
    Python is recorded: Tether's own, not the fresh one."""
    body = (
        "import os\nopen('out.txt', 'w').write('1')\n"
        "if 'tether-env-' in os.environ.get('VIRTUAL_ENV', ''):\n"
        "    import tether\n    tether.log_param('x', 1)\n"
    )
    shell_script(repo, body)
    with Project.open(repo) as project:
        v = project.reproduce("CSH", env="fresh")
    assert v.verdict == "FAILED", v.reason
    assert "did not run in the fresh environment" in v.reason and sys.prefix in v.reason
