"""``tether reproduce --env fresh``: a new virtual environment built from a run's recorded
package list, so drift in the current environment is ruled out.

Every recorded distribution is pinned (``name==version``; VCS and URL installs from their
recorded source; local folders installed from their path when it exists here) and installed
with ``--no-deps``: exactly the recorded set, no resolver. What cannot be pinned is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FreshEnv:
    root: str
    python: str
    interpreter: str  # the version the venv runs
    unpinned: list[str] = field(default_factory=list)  # recorded but not installable here
    packages: dict[str, str] = field(default_factory=dict)  # what the venv holds: name -> version


class EnvBuildError(Exception):
    pass


def build(env: dict[str, Any], where: Path) -> FreshEnv:
    python = _interpreter(env)
    _run([python, "-m", "venv", str(where)], "create the virtual environment")
    bin_python = str(where / "bin" / "python")
    pins, local, unpinned = _pins(env)
    req = where / "requirements.txt"
    req.write_text("\n".join(pins) + "\n")
    pip = [
        bin_python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
    ]
    _run([*pip, "-r", str(req)], "install the recorded packages")
    for path in local:
        _run([*pip, path], f"install {path}")
    version = _run([bin_python, "-c", "import platform; print(platform.python_version())"], "")
    return FreshEnv(str(where), bin_python, version.strip(), unpinned, _installed(bin_python))


def _interpreter(env: dict[str, Any]) -> str:
    """The recorded Python's exact version when it is installed here, else this one (the
    difference then shows as drift)."""
    wanted = str((env.get("python") or {}).get("version") or "")
    if wanted == ".".join(map(str, sys.version_info[:3])):
        return sys.executable
    major_minor = ".".join(wanted.split(".")[:2])
    candidate = shutil.which(f"python{major_minor}") if major_minor else None
    return candidate or sys.executable


def _pins(env: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    pins: list[str] = []
    local: list[str] = []
    unpinned: list[str] = []
    for name, info in sorted((env.get("packages") or {}).items()):
        source = info.get("source") or {}
        url = str(source.get("url") or "")
        if url.startswith("file://"):
            path = url[len("file://") :]
            (local if Path(path).exists() else unpinned).append(
                path if Path(path).exists() else name
            )
        elif source.get("vcs") and source.get("commit_id"):
            pins.append(f"{name} @ {source['vcs']}+{url}@{source['commit_id']}")
        elif url:
            pins.append(f"{name} @ {url}")
        else:
            pins.append(f"{name}=={info['version']}")
    return pins, local, unpinned


def _installed(python: str) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = _run([python, "-c", code], "list the installed packages")
    return {k.lower().replace("_", "-"): v for k, v in json.loads(out).items()}


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvBuildError(f"could not {what}: {' / '.join(tail)}")
    return proc.stdout


@contextmanager
def activated(fresh: FreshEnv) -> Iterator[None]:
    """Commands run meanwhile find the fresh environment's ``python`` first on PATH."""
    from unittest.mock import patch  # sets them, and restores exactly what was there

    path = f"{Path(fresh.python).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with patch.dict(os.environ, {"PATH": path, "VIRTUAL_ENV": fresh.root}):
        yield
