"""Which Python a command line runs, as `tether run` must find it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tether.capture.interpreter import (
    command_environment,
    contribution_needed,
    find_interpreter,
    is_own,
    probe,
)


def test_commands_are_resolved_as_the_shell_would(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    path = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin"}
    assert find_interpreter(["python3", "x.py"], tmp_path, path).path == str(venv / "bin/python3")
    assert find_interpreter(["env", "A=1", "python", "-u"], tmp_path, path).path == str(
        venv / "bin/python"
    )
    assert find_interpreter(["v/bin/python", "x.py"], tmp_path, path).path == str(
        venv / "bin/python"
    )  # relative to the run's folder
    assert find_interpreter(["uv", "run", "x.py"], tmp_path, path).path is None
    assert "not on PATH" in find_interpreter(["nosuchpython3"], tmp_path, path).reason
    ls = find_interpreter(["ls"], tmp_path, path)
    assert ls.path is None and "is a program" in ls.reason
    assert is_own(sys.executable) and not is_own(str(venv / "bin" / "python"))


def test_a_venv_without_pip_is_read_and_the_answer_cached(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    first = probe(python, tmp_path, os.environ, tmp_path / "cache")
    assert isinstance(first, dict) and first["packages"] == {}
    assert first["python"]["prefix"] == str(venv) and first["python"]["venv"]
    assert list((tmp_path / "cache").glob("interp-*.json"))
    (site,) = venv.glob("lib/python*/site-packages")
    info = site / "newpkg-3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: NewPkg\nVersion: 3.0\n")
    again = probe(python, tmp_path, os.environ, tmp_path / "cache")  # site folder changed
    assert isinstance(again, dict) and again["packages"] == {"newpkg": {"version": "3.0"}}


def test_an_unknown_interpreter_keeps_no_package_list_of_tethers(tmp_path: Path) -> None:
    own = {"python": {"version": "3"}, "packages": {"click": {"version": "8"}}, "conda": {}}
    env = command_environment(own, ["/bin/sh", "run.sh"], tmp_path, tmp_path / "cache")
    assert env["packages"] == {} and env["python"] == {}
    assert env["interpreter"]["known"] is False and "sh" in env["interpreter"]["reason"]


def test_a_child_contributes_its_environment_only_when_the_run_lacks_it(tmp_path: Path) -> None:
    assert contribution_needed({"known": False, "reason": "a sh script"})
    assert contribution_needed(None)  # a run started by an older Tether
    assert not contribution_needed({"known": True, "path": sys.executable, "source": "tether"})
    assert not contribution_needed({"known": True, "source": "command", "prefix": sys.prefix})
    assert contribution_needed({"known": True, "source": "command", "prefix": str(tmp_path)})
