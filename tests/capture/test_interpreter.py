"""Which Python a command line runs, as `tether run` must find it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tether.capture.interpreter import (
    contribution_needed,
    find_interpreter,
    is_own,
    probe,
    read_interpreter,
    with_interpreter,
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
    env = with_interpreter(
        own, read_interpreter(["/bin/sh", "run.sh"], tmp_path, tmp_path / "cache")
    )
    assert env["packages"] == {} and env["python"] == {}
    assert env["interpreter"]["known"] is False and "sh" in env["interpreter"]["reason"]


def test_a_child_contributes_its_environment_only_when_the_run_lacks_it(tmp_path: Path) -> None:
    assert contribution_needed({"known": False, "reason": "a sh script"})
    assert contribution_needed(None)  # a run started by an older Tether
    assert not contribution_needed({"known": True, "path": sys.executable, "source": "tether"})
    assert not contribution_needed({"known": True, "source": "command", "prefix": sys.prefix})
    assert contribution_needed({"known": True, "source": "command", "prefix": str(tmp_path)})


def test_env_in_front_of_the_command_is_followed_as_env_would_run_it(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin", "X": "1"}
    elsewhere = {"PATH": "/usr/bin:/bin"}
    system = shutil.which("python3", path=os.defpath)
    found = find_interpreter(["env", f"PATH={venv / 'bin'}", "python", "p.py"], tmp_path, elsewhere)
    assert found.path == str(venv / "bin" / "python") and found.env is not None
    assert found.env["PATH"] == str(venv / "bin")  # what the probe runs with
    assert find_interpreter(["env", "-i", "python3", "p.py"], tmp_path, ours).path == system
    assert find_interpreter(["env", "-u", "PATH", "python3"], tmp_path, ours).path == system
    assert find_interpreter(["env", "--unset=PATH", "python3"], tmp_path, ours).path == system
    assert find_interpreter(["/usr/bin/env", "-iv", "python3"], tmp_path, ours).path == system
    after = ["env", "--", f"PATH={venv / 'bin'}", "python3"]
    assert find_interpreter(after, tmp_path, elsewhere).path == str(venv / "bin" / "python3")
    split = ["env", "-S", f"PATH={venv / 'bin'} python -u", "p.py"]
    assert find_interpreter(split, tmp_path, elsewhere).path == str(venv / "bin" / "python")
    moved = find_interpreter(["env", "-C", str(tmp_path), "v/bin/python"], Path("/"), elsewhere)
    assert moved.path == str(venv / "bin" / "python") and moved.cwd == tmp_path
    script = tmp_path / "run.py"
    script.write_text(f"#!/usr/bin/env -S PATH={venv / 'bin'} python3\nprint(1)\n")
    script.chmod(0o755)
    assert find_interpreter(["./run.py"], tmp_path, elsewhere).path == str(venv / "bin" / "python3")


def test_a_user_site_made_after_the_first_run_is_seen(tmp_path: Path) -> None:
    """`pip install --user` when ~/.local did not exist yet: the cached answer is stale."""
    venv = tmp_path / "v"  # a venv that sees the system's site and the user's
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    python = str(venv / "bin" / "python")
    env = {**os.environ, "PYTHONUSERBASE": str(tmp_path / "ub")}  # not there yet
    first = probe(python, tmp_path, env, tmp_path / "cache")
    assert isinstance(first, dict) and "fakepkg" not in first["packages"]
    where = subprocess.run(
        [python, "-c", "import site; print(site.getusersitepackages())"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    info = Path(where) / "fakepkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n")
    again = probe(python, tmp_path, env, tmp_path / "cache")
    assert isinstance(again, dict) and again["packages"]["fakepkg"] == {"version": "1.0"}
