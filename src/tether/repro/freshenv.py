"""``tether reproduce --env fresh``: a new virtual environment built from a run's recorded
package list, so drift in the current environment is ruled out.

Every recorded distribution is pinned (``name==version``) and installed with ``--no-deps``:
exactly the recorded set, no resolver. A record is other people's content, so only the package
indexes *you* configured are used: ``reproduce.index_url`` in Tether's config, else pip's own
(``PIP_INDEX_URL``, pip.conf), never an index, URL or path the record names. A package the record
says came from a direct URL, a VCS or a local folder is refused unless ``allow_sources`` (then
installed from that recorded source; a local folder only when it exists here), and an entry whose
name or version is not a plain one (text pip would read as an option, ``--index-url`` and the
like) is always refused. What cannot be pinned is reported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# PEP 508 names; versions as PEP 440 spells them (a legacy one with other characters cannot be
# pinned either): nothing pip could read as an option, a URL or a second requirement
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,200}[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.+!_*-]{0,100})$")
_PYTHON = re.compile(r"^\d{1,2}\.\d{1,3}(?:\.\d{1,3})?$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s]{1,2000}$")
_COMMIT = re.compile(r"^[0-9A-Za-z._/-]{1,200}$")


@dataclass
class FreshEnv:
    root: str
    python: str
    interpreter: str  # the version the venv runs
    unpinned: list[str] = field(default_factory=list)  # recorded but not installable here
    packages: dict[str, str] = field(default_factory=dict)  # what the venv holds: name -> version


class EnvBuildError(Exception):
    pass


@dataclass
class Requirements:
    """What a record asks ``--env fresh`` to install, sorted into what will be."""

    pins: list[str] = field(default_factory=list)  # lines of the requirements file
    local: list[str] = field(default_factory=list)  # folders installed from their path
    unpinned: list[str] = field(default_factory=list)  # recorded, not installable here
    refused: list[str] = field(default_factory=list)  # "name (why)": never installed as asked

    def refusal(self) -> str:
        """Why the environment is not built, naming each refused package ("" when none)."""
        if not self.refused:
            return ""
        return (
            "the record asks to install packages from outside your configured package index: "
            + "; ".join(self.refused)
            + ". Only your index is used (reproduce.index_url, PIP_INDEX_URL or pip.conf); "
            "pass --allow-direct-sources if you trust where these came from"
        )


def requirements(env: dict[str, Any], *, allow_sources: bool = False) -> Requirements:
    """The recorded packages as pip requirements (see the module's docstring)."""
    out = Requirements()
    packages = env.get("packages")
    for name, info in sorted((packages if isinstance(packages, dict) else {}).items()):
        info = info if isinstance(info, dict) else {}
        version, source = str(info.get("version") or ""), info.get("source") or {}
        source = source if isinstance(source, dict) else {}
        url, vcs = str(source.get("url") or ""), str(source.get("vcs") or "")
        if not isinstance(name, str) or not _NAME.match(name):
            out.refused.append(f"{name!r} (not a package name: pip would read it as more)")
        elif not url:
            if _VERSION.match(version):
                out.pins.append(f"{name}=={version}")
            else:
                out.refused.append(f"{name} {version!r} (not a version: pip would read it as more)")
        elif not _URL.match(url):
            out.refused.append(f"{name} from {url!r} (not a URL)")
        elif not allow_sources:
            kind = "a local folder" if url.startswith("file:") else f"{vcs} at" if vcs else "a URL"
            out.refused.append(f"{name} from {kind} {url}")
        elif url.startswith("file://"):
            path = url[len("file://") :]
            (out.local if Path(path).exists() else out.unpinned).append(
                path if Path(path).exists() else name
            )
        elif vcs and source.get("commit_id"):
            commit = str(source["commit_id"])
            if _COMMIT.match(commit) and re.match(r"^[a-z]{2,5}$", vcs):
                out.pins.append(f"{name} @ {vcs}+{url}@{commit}")
            else:
                out.refused.append(f"{name} at {vcs!r} commit {commit!r} (not a VCS commit)")
        else:
            out.pins.append(f"{name} @ {url}")
    return out


def build(
    env: dict[str, Any],
    where: Path,
    *,
    index_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    allow_sources: bool = False,
) -> FreshEnv:
    """A venv at ``where`` holding the recorded packages; pip runs with ``environ`` (default:
    this process's) and, when given, ``--index-url index_url``."""
    wanted = requirements(env, allow_sources=allow_sources)
    if wanted.refused:
        raise EnvBuildError(wanted.refusal())
    run_env = dict(os.environ if environ is None else environ)
    python = _interpreter(env)
    _run([python, "-m", "venv", str(where)], "create the virtual environment", run_env)
    bin_python = str(where / "bin" / "python")
    req = where / "requirements.txt"
    req.write_text("\n".join(wanted.pins) + "\n")
    pip = [
        bin_python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        *(["--index-url", index_url] if index_url else []),
    ]
    _run([*pip, "-r", str(req)], "install the recorded packages", run_env)
    for path in wanted.local:
        _run([*pip, path], f"install {path}", run_env)
    code = "import platform; print(platform.python_version())"
    version = _run([bin_python, "-c", code], "", run_env)
    return FreshEnv(
        str(where), bin_python, version.strip(), wanted.unpinned, _installed(bin_python, run_env)
    )


def _interpreter(env: dict[str, Any]) -> str:
    """The recorded Python's exact version when it is installed here, else this one (the
    difference then shows as drift). A version that is not one names no program."""
    wanted = str((env.get("python") or {}).get("version") or "")
    if wanted == ".".join(map(str, sys.version_info[:3])) or not _PYTHON.match(wanted):
        return sys.executable
    major_minor = ".".join(wanted.split(".")[:2])
    return shutil.which(f"python{major_minor}") or sys.executable


def _installed(python: str, environ: dict[str, str]) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = _run([python, "-c", code], "list the installed packages", environ)
    return {k.lower().replace("_", "-"): v for k, v in json.loads(out).items()}


def _run(argv: list[str], what: str, environ: dict[str, str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=environ)
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
