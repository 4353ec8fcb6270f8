"""`tether reproduce` re-runs a command with the interpreter it ran with: a script's shebang,
the Python a script that logged its own run was started by, an interpreter named by a relative
path outside the repository."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import tether
from tests.conftest import BIN, git, write_files
from tether.api import Project

PREFIX = "import sys\nopen('out.txt', 'w').write(sys.prefix + '\\n')\n"


def tether_cli(cwd: Path, *argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv], cwd=cwd, capture_output=True, text=True, check=False, **kw
    )  # type: ignore[call-overload]


def venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where


def committed(repo: Path, files: dict[str, str]) -> None:
    write_files(repo, files)
    with open(repo / ".gitignore", "a") as f:
        f.write("out.txt\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "script")


def test_a_shebang_script_is_rerun_by_its_shebang_not_by_tethers_python(
    repo: Path, tmp_path: Path
) -> None:
    other = venv(tmp_path / "venv2")
    committed(repo, {"shm.py": f"#!{other}/bin/python\n" + PREFIX})
    (repo / "shm.py").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "exec")
    proc = tether_cli(repo, "run", "-n", "SHM", "--out", "out.txt", "--", "./shm.py")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "out.txt").read_text().strip() == str(other)
    with Project.open(repo) as project:
        v = project.reproduce("SHM")
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs, v.drift)
    assert v.drift is not None and not v.drift.changed and not v.drift.added


def test_a_script_that_logged_its_own_run_reruns_with_the_python_that_ran_it(
    repo: Path, tmp_path: Path
) -> None:
    """`venv2/bin/python train.py` with `tether.start_run()` inside: no launcher, the record's
    command is `train.py ...`; the re-run is venv2's python again, not Tether's."""
    other = venv(tmp_path / "venv2")
    script = PREFIX + "import tether\nwith tether.start_run(name='own'):\n"
    script += "    tether.log_output('out.txt')\n"
    committed(repo, {"train.py": script})
    site = subprocess.run(
        [other / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    here = [str(Path(tether.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    (Path(site) / "tether.pth").write_text("\n".join(here) + "\n")  # tether installed there
    subprocess.run([str(other / "bin/python"), "train.py"], cwd=repo, check=True)
    with Project.open(repo) as project:
        assert project.get_run("own")["command"] == ["train.py"]
        v = project.reproduce("own")
    assert v.verdict == "REPRODUCED", (v.reason, v.outputs)


def test_an_interpreter_by_a_relative_path_outside_the_repository_that_is_gone(
    repo: Path,
) -> None:
    other = venv(repo.parent / "venv2")
    committed(repo, {"plain.py": PREFIX})
    argv = ["--out", "out.txt", "--", "../venv2/bin/python3", "plain.py"]
    assert tether_cli(repo, "run", "-n", "REL2", *argv).returncode == 0
    with Project.open(repo) as project:
        assert project.reproduce("REL2").verdict == "REPRODUCED"
    other.rename(repo.parent / "venv2-moved")
    proc = tether_cli(repo, "reproduce", "REL2")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout and "../venv2/bin/python3" in proc.stdout


SLOW = (
    "import os, time\nopen('out.txt', 'w').write('1')\nif os.environ.get('MARK'):\n"
    "    open(os.environ['MARK'], 'w').close()\n    time.sleep(60)\n"
)


def interrupted(repo: Path, ref: str, marker: Path) -> subprocess.CompletedProcess[str]:
    """`tether reproduce REF`, Ctrl-C'd (SIGINT to its process group, as a terminal sends it)
    once the re-run has begun (no clock asserted: it polls for the re-run's marker)."""
    proc = subprocess.Popen(
        [str(BIN / "tether"), "reproduce", ref],
        cwd=repo, env={**os.environ, "MARK": str(marker)}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for _ in range(600):
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_the_rerun_exits_130_and_leaves_no_worktree(
    repo: Path, tmp_path: Path
) -> None:
    committed(repo, {"slow.py": SLOW})
    argv = ["--out", "out.txt", "--", sys.executable, "slow.py"]
    assert tether_cli(repo, "run", "-n", "SLOW", *argv).returncode == 0
    done = interrupted(repo, "SLOW", tmp_path / "rerun-started")
    assert done.returncode == 130, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_ctrl_c_during_a_pipelines_rerun_exits_130_and_leaves_no_worktree(
    repo: Path, tmp_path: Path
) -> None:
    stages = (
        "stages:\n  slow:\n    cmd: python3 slow.py\n    deps: [slow.py]\n    outs: [out.txt]\n"
    )
    committed(repo, {"slow.py": SLOW, "pipeline.yaml": stages})
    assert tether_cli(repo, "repro").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "ran")
    with Project.open(repo) as project:
        (whole,) = project.search_runs("tags.kind = 'pipeline'")
        (stage,) = project.search_runs("tags.stage = 'slow'")
    for ref in (whole.id, stage.id):  # the whole pipeline run, then its stage's run alone
        marker = tmp_path / f"{ref}-started"
        done = interrupted(repo, ref, marker)
        assert done.returncode == 130, done.stdout + done.stderr
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
