"""Which Python a command runs, and that interpreter's own version and packages.

``tether run -- /other/venv/bin/python train.py`` runs another interpreter than Tether's: its
environment is what the run depends on. The interpreter is found from the command line and
``PATH`` (``python``, ``python3.12``, ``/x/bin/python``, ``env python``, a script whose shebang
names python); when it is Tether's own (the common case) nothing more is done, otherwise it is
asked once (``python -c``, importlib.metadata, JSON out: works in a venv made ``--without-pip``).
A shell script, a binary or ``uv run`` cannot be known from outside: that is said, and a script
that imports tether contributes its environment from inside (see ``runs/live.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether._fs import write_cache
from tether.hashing import hash_bytes

_PYTHON_NAME = re.compile(r"python[0-9.]*(?:\.exe)?|pypy[0-9.]*")
_TIMEOUT = 60
_CACHE_FORMAT = 2  # 2: the folders searched that did not exist yet are watched too

# run by the command's interpreter: everything it prints is the last line, one JSON document
PROBE = r"""
import json, re, sys
out = {"executable": sys.executable, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
       "implementation": sys.implementation.name, "version": sys.version.split()[0],
       "path": [p for p in sys.path if p], "packages": {}}
try:
    from importlib import metadata
    dists = list(metadata.distributions())
except Exception:
    dists = []
for dist in dists:
    fields = {}
    try:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    except Exception:
        continue
    for line in text.splitlines():
        if not line:
            break
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    name = re.sub(r"[-_.]+", "-", fields.get("Name", "")).lower()
    if not name or name in out["packages"]:
        continue
    entry = {"version": fields.get("Version", "")}
    try:
        direct = dist.read_text("direct_url.json")
    except Exception:
        direct = None
    if direct:
        entry["direct_url"] = direct
    out["packages"][name] = entry
try:  # the folders it searches even while they do not exist (a user site made later)
    import site
    out["search"] = [*site.getsitepackages(), site.getusersitepackages()]
except Exception:
    out["search"] = []
sys.stdout.write("\n" + json.dumps(out) + "\n")
"""


@dataclass(frozen=True)
class Interpreter:
    """The Python a command runs: ``path`` as the command names it (unresolved: a venv's
    ``bin/python`` is a symlink, and the link's folder is what makes it the venv's), or None
    with the ``reason`` it cannot be known. ``env`` and ``cwd`` are what it runs with when an
    ``env`` in front of it changed them (``env -i``, ``env PATH=... python``, ``env -C DIR``)."""

    path: str | None
    reason: str = ""
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


@dataclass
class _Launch:
    """What the command after any ``env`` prefix runs: its words, environment and folder."""

    words: list[str]
    env: dict[str, str]
    cwd: Path | None
    changed: bool = False  # an `env` prefix changed the environment or the folder


def find_interpreter(
    command: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Interpreter:
    """The interpreter ``command`` runs, from its first words, ``PATH`` and shebang lines."""
    env = os.environ if env is None else env
    run = _Launch(list(command), dict(env), cwd)
    _through_env(run)
    found = _interpreter_of(run)
    if run.changed and found.path is not None:
        return Interpreter(found.path, env=run.env, cwd=run.cwd)
    return found


def command_env(command: Sequence[str] | None) -> dict[str, str] | None:
    """The environment ``command`` runs with when an ``env`` in front of it changes Tether's
    (``env TZ=UTC python ...``, ``env -i ...``); None when it inherits Tether's as it is."""
    if not command or Path(command[0]).name != "env":
        return None
    run = _Launch(list(command), dict(os.environ), None)
    _through_env(run)
    return run.env if run.changed else None


def _interpreter_of(run: _Launch) -> Interpreter:
    words, env = run.words, run.env
    if not words:
        return Interpreter(None, "the command is empty")
    first = words[0]
    if Path(first).name == "uv" and words[1:2] == ["run"]:
        return Interpreter(None, "`uv run` chooses the interpreter itself")
    path = _locate(first, run.cwd, env)
    if path is None:
        return Interpreter(None, f"{first} is not on PATH")
    if _PYTHON_NAME.fullmatch(Path(first).name):
        return Interpreter(path)
    shebang = _shebang(path)
    if shebang:  # the kernel runs `interpreter [arg] path`: an `env` there is parsed the same
        inner = _Launch(shebang, run.env, run.cwd, run.changed)
        _through_env(inner)
        run.env, run.cwd, run.changed = inner.env, inner.cwd, inner.changed
        named = inner.words[0] if inner.words else shebang[0]
        if _PYTHON_NAME.fullmatch(Path(named).name):
            found = _locate(named, None, run.env) if "/" not in named else named
            if found is not None:
                return Interpreter(found)
            return Interpreter(None, f"{first}'s shebang names {named}, which is not on PATH")
        return Interpreter(None, f"{first} is a {Path(named).name} script, not Python")
    return Interpreter(None, f"{first} is a program, not a Python interpreter")


def _through_env(run: _Launch) -> None:
    """Strip ``env [OPTION]... [NAME=VALUE]...`` prefixes (GNU and BSD ``env``), applying what
    they do to the environment and folder the rest of the command runs with."""
    while run.words and Path(run.words[0]).name == "env":
        rest, options = run.words[1:], True
        while rest:
            word = rest[0]
            if word == "--" and options:
                rest, options = rest[1:], False  # then only NAME=VALUE, then the command
            elif word.startswith("-") and options:
                rest = _env_option(run, rest)
            elif "=" in word:
                name, _, value = word.partition("=")
                run.env[name], run.changed = value, True
                rest, options = rest[1:], False
            else:
                break
        run.words = rest


_ENV_ARG = {"-u": "--unset", "-C": "--chdir", "-S": "--split-string", "-P": "-P"}


def _env_option(run: _Launch, rest: list[str]) -> list[str]:
    """Apply the option ``rest[0]`` (and its argument); the words after it."""
    word, after = rest[0], rest[1:]
    if word in ("-", "-i", "--ignore-environment"):
        run.env, run.changed = {}, True
        return after
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        if name in ("--unset", "--chdir", "--split-string"):
            if not eq and after:
                value, after = after[0], after[1:]
            return _env_arg(run, name, value, after)
        return after  # --null, --debug, --*-signal[=SIG]: nothing the interpreter depends on
    for i, flag in enumerate(word[1:], 1):  # bundled short flags: -iv, -uNAME, -S'python -u'
        if flag == "i":
            run.env, run.changed = {}, True
        elif f"-{flag}" in _ENV_ARG:
            value = word[i + 1 :]
            if not value and after:
                value, after = after[0], after[1:]
            return _env_arg(run, _ENV_ARG[f"-{flag}"], value, after)
    return after


def _env_arg(run: _Launch, option: str, value: str, after: list[str]) -> list[str]:
    if option == "--unset":
        run.env.pop(value, None)
        run.changed = True
    elif option == "--chdir":
        base = run.cwd or Path.cwd()
        run.cwd, run.changed = base / value, True
    elif option == "--split-string":
        import shlex

        try:
            return [*shlex.split(value), *after]
        except ValueError:
            return [*value.split(), *after]
    return after  # -P altpath: BSD env's search path for the command (rare; not followed)


def _locate(word: str, cwd: Path | None, env: Mapping[str, str]) -> str | None:
    if "/" in word:
        path = Path(word) if os.path.isabs(word) else (cwd or Path.cwd()) / word
        return str(Path(os.path.abspath(path))) if path.is_file() else None
    return shutil.which(word, path=env.get("PATH", os.defpath))


def _shebang(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return []
    if not head.startswith(b"#!"):
        return []
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return line.split(None, 1)  # as the kernel passes it: the rest of the line is one argument


def venv_prefix(path: str) -> str | None:
    """The venv an interpreter path belongs to (its ``pyvenv.cfg``), as Python decides it."""
    folder = os.path.dirname(os.path.abspath(path))
    for candidate in (folder, os.path.dirname(folder)):
        if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
            return candidate
    return None


def is_own(path: str) -> bool:
    """True when ``path`` is the interpreter running Tether, in the same environment."""
    prefix = venv_prefix(path)
    try:
        if prefix is not None:
            return os.path.samefile(prefix, sys.prefix)
        return sys.prefix == sys.base_prefix and os.path.samefile(path, sys.executable)
    except OSError:
        return False


def probe(
    path: str, cwd: Path | None, env: Mapping[str, str], cache_dir: Path
) -> dict[str, Any] | str:
    """The interpreter's ``python`` and ``packages`` sections, or why they could not be read.
    A cached answer is reused while the interpreter and every folder on its ``sys.path`` are
    unchanged (installing a package changes its site folder)."""
    key = _cache_key(path, env)
    cached = _read_cache(cache_dir, key)
    if cached is not None:
        return cached
    try:
        done = subprocess.run(
            [path, "-c", PROBE],
            cwd=cwd, env=dict(env), capture_output=True, timeout=_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path} could not be run to read its packages ({exc})"
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        raw = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{path} did not report its packages ({err[-1] if err else 'no output'})"
    found = _sections(raw)
    if key is not None:
        watched = [*(raw.get("path") or []), *(raw.get("search") or [])]
        _write_cache(cache_dir, key, found, list(dict.fromkeys(str(p) for p in watched)))
    return found


def pythonpath(env: Mapping[str, str], cwd: str) -> list[str]:
    from tether.capture.env import pythonpath as entries

    return entries(env, cwd)


def _sections(raw: dict[str, Any]) -> dict[str, Any]:
    from tether.capture.env import _direct_url_source

    packages: dict[str, dict[str, Any]] = {}
    for name, info in sorted((raw.get("packages") or {}).items()):
        entry: dict[str, Any] = {"version": str(info.get("version", ""))}
        source = _direct_url_source(info.get("direct_url"))
        if source is not None:
            entry["source"] = source
        packages[str(name)] = entry
    python = {
        "base_prefix": str(raw.get("base_prefix")),
        "executable": str(raw.get("executable")),
        "implementation": str(raw.get("implementation")),
        "prefix": str(raw.get("prefix")),
        "venv": raw.get("prefix") != raw.get("base_prefix"),
        "version": str(raw.get("version")),
    }
    return {"python": python, "packages": packages}


# -- cache: a shim (a script that picks the interpreter) is asked every time -------------------
# what changes the folders an interpreter searches (HOME: the user site, unless PYTHONUSERBASE)
_ENV_KEYS = (
    "HOME", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONPATH", "PYTHONPLATLIBDIR", "PYTHONSAFEPATH",
    "PYTHONUSERBASE", "VIRTUAL_ENV",
)  # fmt: skip


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino, st.st_size


def _cache_key(path: str, env: Mapping[str, str]) -> str | None:
    if _shebang(path):
        return None  # a shim or wrapper script: what it runs can change with no file changing
    parts = [_CACHE_FORMAT, path, _stat_key(path), os.path.realpath(path)]
    parts += [(k, env.get(k)) for k in _ENV_KEYS]
    return hash_bytes(repr(parts).encode())[len("blake3:") :][:32]


def _read_cache(cache_dir: Path, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        data = json.loads((cache_dir / f"interp-{key}.json").read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("paths"), list):
        return None
    for item in data["paths"]:
        if not isinstance(item, list) or len(item) != 2:
            return None
        now = _stat_key(str(item[0]))
        if (list(now) if now else None) != item[1]:
            return None
    found = data.get("found")
    return found if isinstance(found, dict) else None


def _write_cache(cache_dir: Path, key: str, found: dict[str, Any], paths: list[str]) -> None:
    stats = [[p, list(s) if (s := _stat_key(p)) else None] for p in paths]
    data = json.dumps({"found": found, "paths": stats}, sort_keys=True).encode()
    write_cache(cache_dir / f"interp-{key}.json", data)


def read_interpreter(
    command: Sequence[str] | None,
    cwd: Path | None,
    cache_dir: Path,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What the command's interpreter adds to Tether's environment: its ``interpreter`` section
    (``known``, ``source``: process, tether, command; or ``reason``), and for another
    interpreter its ``python`` and ``packages``. Runs nothing in the common case."""
    if command is None:
        return {"interpreter": {"known": True, "source": "process"}}
    if command and command[0] == "tether":  # a pipeline's own run: Tether's process
        return {"interpreter": {"known": True, "source": "tether"}}
    env = os.environ if env is None else env
    found = find_interpreter(command, cwd, env)
    if found.path is None:
        return {"interpreter": {"known": False, "reason": found.reason}}
    sees = env if found.env is None else found.env  # what an `env` prefix made of it
    if is_own(found.path) and all(sees.get(k) == os.environ.get(k) for k in _ENV_KEYS):
        return {"interpreter": {"known": True, "path": found.path, "source": "tether"}}
    read = probe(found.path, found.cwd or cwd, sees, cache_dir)
    if isinstance(read, str):
        return {"interpreter": {"known": False, "reason": read}}
    info = {"known": True, "path": found.path, "prefix": read["python"]["prefix"]}
    if found.env is not None:  # an `env` prefix set the command's own PYTHONPATH (or none)
        where = str(found.cwd or cwd or Path.cwd())
        read = {**read, "pythonpath": pythonpath(found.env, where)}
    return {**read, "interpreter": {**info, "source": "command"}}


def with_interpreter(own: dict[str, Any], reading: dict[str, Any]) -> dict[str, Any]:
    """``own`` (Tether's captured environment) made the command's, from
    :func:`read_interpreter`: an unknown interpreter keeps no package list of Tether's."""
    info = reading["interpreter"]
    if not info.get("known"):
        return _unknown(own, str(info.get("reason")))
    out = {**own, **reading}
    conda = own.get("conda") or {}
    if conda and "python" in reading and conda.get("prefix") != reading["python"]["prefix"]:
        out.pop("conda")  # Tether's conda environment, not the command's
    return dict(sorted(out.items()))


def _unknown(own: dict[str, Any], reason: str) -> dict[str, Any]:
    out = {k: v for k, v in own.items() if k != "conda"}
    out["python"], out["packages"] = {}, {}
    out["interpreter"] = {"known": False, "reason": reason}
    return dict(sorted(out.items()))


def contribution_needed(info: Mapping[str, Any] | None) -> bool:
    """Whether this process (a child attached to a ``tether run``) should record its own
    environment, given the run's ``interpreter`` section: when it could not be known, or was
    read for another interpreter."""
    if not isinstance(info, dict) or not info.get("known"):
        return True
    if info.get("prefix"):  # read by running it (a shim's path says nothing): its sys.prefix
        try:
            return not os.path.samefile(str(info["prefix"]), sys.prefix)
        except OSError:
            return True
    path = info.get("path")
    return bool(path) and not is_own(str(path))


def in_background(fn: Callable[..., dict[str, Any]], *args: Any) -> Callable[[], dict[str, Any]]:
    """Call ``fn(*args)`` in a thread; the returned function waits for its result (or error)."""
    box: list[Any] = []

    def work() -> None:
        try:
            box.append(fn(*args))
        except BaseException as exc:  # handed to the caller, raised there
            box.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def result() -> dict[str, Any]:
        thread.join()
        if isinstance(box[0], BaseException):
            raise box[0]
        out: dict[str, Any] = box[0]
        return out

    return result
