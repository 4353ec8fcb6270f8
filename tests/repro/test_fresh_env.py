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
    with Project.open(repo) as project:
        v = project.reproduce("job", modes={"out.txt": "none"}, env="fresh")
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
