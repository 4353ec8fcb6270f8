"""`tether reproduce` as a script or a person at a terminal uses it: --json output a program
can parse, and a notice naming the run it took when a name is borne by several."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN, git, write_files

CHATTY = "import sys\nprint('chatter from the script')\nopen('out.txt', 'w').write('1\\n')\n"


def tether_cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def chatty(repo: Path, *names: str) -> None:
    write_files(repo, {"chatty.py": CHATTY})
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "chatty")
    for name in names:
        argv = ["run", "-n", name, "--out", "out.txt", "--", sys.executable, "chatty.py"]
        assert tether_cli(repo, *argv).returncode == 0


def test_json_stdout_holds_the_verdict_alone(repo: Path) -> None:
    chatty(repo, "talk")
    proc = tether_cli(repo, "reproduce", "talk", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "REPRODUCED"
    assert "chatter from the script" in proc.stderr  # the re-run's output is still shown


def test_a_name_borne_by_several_runs_says_which_it_took(repo: Path) -> None:
    chatty(repo, "twice", "twice")
    proc = tether_cli(repo, "reproduce", "twice")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    newest = json.loads(tether_cli(repo, "runs", "show", "twice", "--json").stdout)["id"]
    assert "twice" in proc.stderr and newest[:8] in proc.stderr


def test_lineage_and_model_register_say_which_run_a_shared_name_took(repo: Path) -> None:
    chatty(repo, "twice", "twice")
    newest = json.loads(tether_cli(repo, "runs", "show", "twice", "--json").stdout)["id"]
    proc = tether_cli(repo, "lineage", "twice")
    assert proc.returncode == 0, proc.stderr
    assert "2 runs are named twice" in proc.stderr and newest in proc.stderr
    proc = tether_cli(repo, "model", "register", "m", "--run", "twice", "--path", "out.txt")
    assert proc.returncode == 0, proc.stderr
    assert "2 runs are named twice" in proc.stderr and newest in proc.stderr
    assert tether_cli(repo, "lineage", newest).stderr == ""  # an id is no shared name
