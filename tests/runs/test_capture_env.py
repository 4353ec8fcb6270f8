"""The environment a run records is the command's interpreter's, not Tether's; and `tether diff`
blames nondeterminism only when everything was captured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIN, git, make_repo, write_files
from tests.runs.test_diff import fake_distribution
from tether.api import Project

TETHER = str(BIN / "tether")
SCRIPT = "open('out.txt', 'w').write('same every time\\n')\n"


def tether_cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TETHER, *args], cwd=repo, capture_output=True, text=True, check=False, timeout=300
    )


def other_venv(where: Path, package: str, version: str) -> Path:
    """A second interpreter, as `python -m venv --without-pip` makes it, with one package."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    (site,) = where.glob("lib/python*/site-packages")
    fake_distribution(site, package, version)
    return where / "bin" / "python"


def env_of(project: Project, run: str) -> dict[str, object]:
    record = project.get_run(run)
    env: dict[str, object] = json.loads(project.ws.store.read_bytes(record["env"]))
    return env


@pytest.fixture
def committed(repo: Path) -> Path:
    write_files(repo, {"v.py": SCRIPT})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "script")
    return repo


def test_a_run_with_another_venv_records_that_venvs_packages(
    committed: Path, tmp_path: Path
) -> None:
    python = other_venv(tmp_path / "other", "onlyinother", "2.5")
    assert tether_cli(committed, "run", "-n", "theirs", "--", str(python), "v.py").returncode == 0
    assert tether_cli(committed, "run", "-n", "ours", "--", sys.executable, "v.py").returncode == 0
    with Project.open(committed) as project:
        theirs = env_of(project, "theirs")
        assert theirs["python"]["prefix"] == str(tmp_path / "other")  # type: ignore[index]
        assert theirs["packages"] == {"onlyinother": {"version": "2.5"}}  # not Tether's own
        assert theirs["interpreter"]["source"] == "command"  # type: ignore[index]
        ours = env_of(project, "ours")
        assert "click" in ours["packages"]  # type: ignore[operator]
        assert ours["interpreter"]["source"] == "tether"  # type: ignore[index]
    text = tether_cli(committed, "diff", "theirs", "ours").stdout
    assert "removed onlyinother 2.5" in text and "added click" in text
    assert "nondeterminism" not in text


def test_a_script_with_a_python_shebang_and_python_on_path_are_resolved(
    committed: Path, tmp_path: Path
) -> None:
    python = other_venv(tmp_path / "other", "onlyinother", "1.0")
    write_files(committed, {"run.py": f"#!{python}\n{SCRIPT}"})
    os.chmod(committed / "run.py", 0o755)
    assert tether_cli(committed, "run", "-n", "shebang", "--", "./run.py").returncode == 0
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        [TETHER, "run", "-n", "onpath", "--", "python", "v.py"],
        cwd=committed, env=env, capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    with Project.open(committed) as project:
        for name in ("shebang", "onpath"):
            assert env_of(project, name)["packages"] == {"onlyinother": {"version": "1.0"}}


def test_a_shell_script_is_said_unknown_and_diff_does_not_blame_nondeterminism(
    committed: Path,
) -> None:
    write_files(committed, {"run.sh": f"#!/bin/sh\nexec {sys.executable} v.py\n"})
    os.chmod(committed / "run.sh", 0o755)
    first = tether_cli(committed, "run", "-n", "sh1", "--", "./run.sh")
    assert first.returncode == 0
    assert "warning: the command's Python environment is not known" in first.stderr
    assert tether_cli(committed, "run", "-n", "sh2", "--", "./run.sh").returncode == 0
    with Project.open(committed) as project:
        env = env_of(project, "sh1")
        assert env["interpreter"] == {  # said so, and no package list passed off as its own
            "known": False,
            "reason": "./run.sh is a sh script, not Python",
        }
        assert env["packages"] == {}
    text = tether_cli(committed, "diff", "sh1", "sh2").stdout
    assert "Not captured" in text and "./run.sh is a sh script" in text
    assert "nondeterminism" not in text
    # the same two runs with a known interpreter: now nondeterminism is the honest answer
    for name in ("py1", "py2"):
        assert (
            tether_cli(committed, "run", "-n", name, "--", sys.executable, "v.py").returncode == 0
        )
    assert "look for nondeterminism" in tether_cli(committed, "diff", "py1", "py2").stdout


def test_a_script_that_imports_tether_reports_its_own_environment(committed: Path) -> None:
    write_files(
        committed,
        {
            "train.py": "import tether\ntether.log_metric('acc', 0.5)\n",
            "run.sh": f"#!/bin/sh\nexec {sys.executable} train.py\n",
        },
    )
    os.chmod(committed / "run.sh", 0o755)
    done = tether_cli(committed, "run", "-n", "inside", "--", "./run.sh")
    assert done.returncode == 0, done.stderr
    with Project.open(committed) as project:
        env = env_of(project, "inside")
        assert env["interpreter"]["source"] == "process"  # type: ignore[index]
        assert env["python"]["executable"] == sys.executable  # type: ignore[index]
        assert "click" in env["packages"]  # type: ignore[operator]
        assert project.get_run("inside")["metrics"]["acc"]["last"] == 0.5


def test_env_in_front_of_python_records_the_python_env_runs(
    committed: Path, tmp_path: Path
) -> None:
    python = other_venv(tmp_path / "venv2", "onlyinvenv2", "1.1")
    own = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name, command in (
        ("E", ["env", "python", "v.py"]),
        ("E2", ["env", f"PATH={python.parent}:/usr/bin", "python", "v.py"]),
    ):
        done = subprocess.run(
            [TETHER, "run", "-n", name, "--", *command],
            cwd=committed, env=own, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0
    with Project.open(committed) as project:
        assert env_of(project, "E")["interpreter"]["source"] == "tether"  # type: ignore[index]
        theirs = env_of(project, "E2")
        assert theirs["packages"] == {"onlyinvenv2": {"version": "1.1"}}
        assert theirs["python"]["prefix"] == str(tmp_path / "venv2")  # type: ignore[index]
    text = tether_cli(committed, "diff", "E", "E2").stdout
    assert "added onlyinvenv2 1.1" in text and "nondeterminism" not in text


def editable_install(venv: Path, name: str, source: Path) -> None:
    """What `pip install -e` leaves in a venv: a .pth to the source and a PEP 610 record."""
    (site,) = venv.glob("lib/python*/site-packages")
    fake_distribution(site, name, "0.1")
    (info,) = site.glob(f"{name}-*.dist-info")
    url = source.as_uri()
    (info / "direct_url.json").write_text(json.dumps({"url": url, "dir_info": {"editable": True}}))
    (site / f"__editable__{name}.pth").write_text(f"{source}\n")


def test_code_imported_from_outside_the_repository_is_named_as_not_captured(
    committed: Path, tmp_path: Path
) -> None:
    python = other_venv(tmp_path / "venv", "plain", "1.0")
    lib, extra = tmp_path / "libsrc", tmp_path / "extra"
    write_files(lib, {"mylib/__init__.py": "K = 1\n"})
    write_files(extra, {"helper.py": "H = 1\n"})
    editable_install(python.parent.parent, "mylib", lib)
    write_files(committed, {"u.py": "import mylib, helper\nprint(mylib.K, helper.H)\n"})
    git(committed, "add", "-A")
    git(committed, "commit", "-qm", "u")
    before = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(extra), before]))}
    for name in ("X1", "X2"):
        if name == "X2":
            write_files(lib, {"mylib/__init__.py": "K = 2\n"})  # edited between the runs
        done = subprocess.run(
            [TETHER, "run", "-n", name, "--", str(python), "u.py"],
            cwd=committed, env=env, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    text = " ".join(tether_cli(committed, "diff", "X1", "X2").stdout.split())  # unwrapped
    assert "Not captured" in text and "nondeterminism" not in text
    assert f"editable install mylib from {lib}" in text
    assert f"PYTHONPATH folder {extra}" in text


def test_variables_set_by_env_in_front_of_the_command_are_recorded(committed: Path) -> None:
    env = {**os.environ, "TZ": "UTC", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for name, command in (
        ("utc", ["python", "v.py"]),
        ("tokyo", ["env", "TZ=Asia/Tokyo", "PYTHONHASHSEED=0", "python", "v.py"]),
    ):
        done = subprocess.run(
            [TETHER, "run", "-n", name, "--", *command],
            cwd=committed, env=env, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0
    with Project.open(committed) as project:
        tokyo = env_of(project, "tokyo")
        assert tokyo["env_vars"]["TZ"] == "Asia/Tokyo"  # type: ignore[index]
        assert tokyo["determinism"]["PYTHONHASHSEED"] == "0"  # type: ignore[index]
        d = project.diff_runs("utc", "tokyo")
    assert d.env.env_vars == {"TZ": ("UTC", "Asia/Tokyo")}


def test_an_editable_install_from_another_git_repository_is_recorded_by_commit(
    committed: Path, tmp_path: Path
) -> None:
    python = other_venv(tmp_path / "venv", "plain", "1.0")
    lib = make_repo(tmp_path / "libsrc")
    write_files(lib, {"mylib/__init__.py": "K = 1\n"})
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    editable_install(python.parent.parent, "mylib", lib)
    write_files(committed, {"u.py": "import mylib\nprint(mylib.K)\n"})
    git(committed, "add", "-A")
    git(committed, "commit", "-qm", "u")
    head = git(lib, "rev-parse", "HEAD").strip()
    for name in ("clean", "edited"):
        if name == "edited":
            write_files(lib, {"mylib/__init__.py": "K = 2\n"})
        done = tether_cli(committed, "run", "-n", name, "--", str(python), "u.py")
        assert done.returncode == 0, done.stderr
    with Project.open(committed) as project:
        source = env_of(project, "clean")["packages"]["mylib"]["source"]  # type: ignore[index]
        assert source["commit"] == head and source["dirty"] is False
        d = project.diff_runs("clean", "edited")
    assert f"package mylib: 0.1 @ {head[:10]} → 0.1 @ {head[:10]}+dirty" in d.causes
    assert d.uncaptured == [
        f"B: editable install mylib from {lib}: its uncommitted changes are not recorded"
    ]
