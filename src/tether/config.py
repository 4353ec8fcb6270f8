"""Configuration in layers: ``tether.toml`` < ``.tether/config.toml`` < ``TETHER_*`` variables.

``tether.toml`` is committed and shared, so it must never hold a secret; credentials and
machine-local settings go in the uncommitted ``.tether/config.toml`` or the environment.
Environment variables map to keys by lower-casing and turning ``__`` into a dot:
``TETHER_REMOTE__ORIGIN__SECRET_ACCESS_KEY`` is ``remote.origin.secret_access_key``.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._fs import atomic_write
from tether.errors import ConfigError

PROJECT_FILE = "tether.toml"
LOCAL_FILE = Path(".tether") / "config.toml"
FORMAT = 1
ENV_PREFIX = "TETHER_"
LINK_MODES = ("reflink", "hardlink", "symlink", "copy")
DEFAULTS: dict[str, Any] = {
    "format": FORMAT,
    # link_as_root: let root hardlink or symlink too (root's edits then reach the cache)
    "cache": {"link": "reflink,copy", "jobs": 0, "pack_threshold": 65536, "link_as_root": False},
    "core": {"remote": ""},
    "transfer": {"jobs": 16, "pack_threshold": 65536, "pack_size": 8 * 1024 * 1024},
    # the SQL index: "" is SQLite at .tether/index.db; a SQLAlchemy URL (no password: put that
    # in .tether/config.toml or TETHER_INDEX__URL) points a team at PostgreSQL
    "index": {"url": ""},
    "runs": {"env_allow": [], "experiment": "default", "diff_max_file": 1 << 20},
    "redact": {"patterns": [], "keys": [], "allow": []},
    # prompt evaluation: [prompts.providers.NAME] (type, base_url, model, api_key_env: the name of
    # the variable holding the key, never the key), [prompts.prices."MODEL"] per million tokens
    # render_max_chars and render_timeout_s bound what rendering one template may build and take
    "prompts": {
        "providers": {},
        "prices": {},
        "judge": "",
        "embeddings": "",
        "render_max_chars": 1_000_000,
        "render_timeout_s": 2.0,
    },
    # remote gc: how long what it takes out of use waits in quarantine (and a push's published
    # roots protect), when a remote lock counts as dead, how long gc and push wait for each other
    "gc": {"grace": "14d", "stale_lock": "30m", "lock_wait": "1m"},
}


def _whole(value: object) -> bool:
    if isinstance(value, str):  # from an environment variable
        return value.strip().isdigit()
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: object) -> bool:
    if isinstance(value, str):
        try:
            return float(value) >= 0
        except ValueError:
            return False
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _link_list(value: object) -> bool:
    modes = [m.strip() for m in str(value).split(",") if m.strip()]
    return isinstance(value, str) and bool(modes) and all(m in LINK_MODES for m in modes)


def truthy(value: object) -> bool:
    """A boolean setting, also as an environment variable spells it (1, true, yes)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True


def _boolean(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", "")
    return isinstance(value, bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _regexes(value: object) -> bool:
    if not isinstance(value, list) or not _strings(value):
        return False
    try:
        for v in value:
            re.compile(v)
    except re.error:
        return False
    return True


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(value: object) -> float:
    """``"14d"``, ``"30m"``, ``"90s"``, ``"2w"`` or a number of seconds, in seconds."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        seconds = float(value) if value <= MAX_DURATION else math.inf
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is not None:
        seconds = float(match[1]) * _UNITS[match[2]]
    if seconds is None:
        raise ConfigError(f"{value!r} is not a duration: use e.g. 14d, 12h, 30m or 90s")
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ConfigError(f"{value!r} is too long a duration: at most 10 years (3650d)")
    return seconds


MAX_DURATION = 10 * 365.25 * 86400  # beyond this, a duration is a typo (and overflows timers)


def _duration(value: object) -> bool:
    try:
        duration_seconds(value)
    except ConfigError:
        return False
    return True


_BYTES = (_whole, "a whole number of bytes, e.g. 1048576 for 1 MiB")
_TIME = (_duration, "a duration: a number with s, m, h, d or w, e.g. 14d")
# known key -> (check, what a valid value is): checked when set and when read, so a typo is
# caught at `tether config set`, and a hand edit at the next command, never deep in a run
KNOWN: dict[str, tuple[Any, str]] = {
    "cache.link": (_link_list, "a comma list of " + ", ".join(LINK_MODES)),
    "cache.link_as_root": (_boolean, "true or false"),
    "cache.jobs": (_whole, "a whole number of threads (0: as many as suit the machine)"),
    "cache.pack_threshold": _BYTES,
    "transfer.jobs": (_whole, "a whole number of parallel transfers"),
    "transfer.pack_threshold": _BYTES,
    "transfer.pack_size": _BYTES,
    "runs.diff_max_file": _BYTES,
    "runs.experiment": (lambda v: isinstance(v, str) and bool(v), "an experiment name"),
    "runs.env_allow": (_strings, 'a list of variable names, e.g. ["TZ", "OMP_NUM_THREADS"]'),
    "redact.patterns": (_strings, "a list of regular expressions"),
    "redact.keys": (_strings, "a list of key names"),
    "redact.allow": (_regexes, 'a list of regular expressions never masked, e.g. ["AKIA0{16}"]'),
    "core.remote": (lambda v: isinstance(v, str), "a remote's name"),
    "index.url": (lambda v: isinstance(v, str), "a SQLAlchemy URL, or empty for SQLite"),
    # what `tether reproduce --env fresh` installs from (else pip decides), never the record's
    "reproduce.index_url": (lambda v: isinstance(v, str), "a package index URL (pip's)"),
    "policy.max_header": (_whole, "a whole number of characters"),
    "hooks.max_file_mb": (_number, "a number of megabytes"),
    "prompts.render_max_chars": (_whole, "a whole number of characters, e.g. 1000000"),
    "prompts.render_timeout_s": (_number, "a number of seconds, e.g. 2"),
    "server.url": (
        lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
        "a team server's URL, e.g. https://tether.example.com",
    ),
    "server.project": (lambda v: isinstance(v, str) and bool(v), "a project's name"),
    "server.timeout": (_number, "a number of seconds, e.g. 5"),
    "gc.grace": _TIME,
    "gc.stale_lock": _TIME,
    "gc.lock_wait": _TIME,
}


def check_value(key: str, value: object, where: str | None = None) -> None:
    """Refuse a value a known key cannot take, naming the key, where it came from (None: being
    set now) and the fix."""
    known = KNOWN.get(key)
    if known is None or known[0](value):
        return
    if where is None:
        raise ConfigError(f"{key} cannot be {value!r}: it takes {known[1]}")
    raise ConfigError(
        f"{key} = {value!r} in {where} is not valid: it takes {known[1]}. Fix it there, or "
        f"set it with `tether config set {key} VALUE` (--local for .tether/config.toml)"
    )


def _check_layer(tree: Mapping[str, Any], where: str) -> None:
    for key, value in _flatten(tree):
        check_value(key, value, where)


_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|private|access_key)", re.I)
_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]+:[^/@]+@", re.I)


def is_secret(key: str, value: object) -> bool:
    """True for a key or value that looks like a credential."""
    leaf = key.rsplit(".", 1)[-1]
    if _SECRET_KEY.search(leaf):
        return True
    return isinstance(value, str) and bool(_URL_WITH_PASSWORD.match(value))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix or remove it") from exc


def read_project(root: Path) -> dict[str, Any]:
    """tether.toml alone, as committed: no local layer, no environment."""
    return _read_toml(root / PROJECT_FILE)


def read_local(root: Path) -> dict[str, Any]:
    """.tether/config.toml alone (this clone's settings, keys trusted with ``--local``)."""
    return _read_toml(root / LOCAL_FILE)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(tree: dict[str, Any], key: str, value: object) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_path(tree, key, value)
    return tree


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "__")


def parse_value(text: str) -> object:
    """Read a value typed at the command line: TOML literals (1, true, [..]) or a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass(frozen=True)
class Config:
    """The merged view of every layer (read-only)."""

    root: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        root: Path,
        environ: Mapping[str, str] | None = None,
        project: Mapping[str, Any] | None = None,
    ) -> Config:
        """Every layer; ``project`` stands for tether.toml when given (as it was committed at
        some revision, say)."""
        project = _read_toml(root / PROJECT_FILE) if project is None else dict(project)
        version = project.get("format", FORMAT)
        if version != FORMAT:
            raise ConfigError(
                f"{root / PROJECT_FILE} has format {version}, this Tether reads format {FORMAT}: "
                "upgrade Tether"
            )
        for key, value in _flatten(project):
            if is_secret(key, value):
                raise ConfigError(
                    f"{PROJECT_FILE} holds what looks like a credential ({key}): it is committed, "
                    f"so move it with `tether config set {key} VALUE --local` and remove it there"
                )
        _check_layer(project, str(root / PROJECT_FILE))
        local = _read_toml(root / LOCAL_FILE)
        _check_layer(local, str(root / LOCAL_FILE))
        env = _env_layer(os.environ if environ is None else environ)
        for key, value in _flatten(env):
            if KNOWN.get(key, (None, ""))[0] is not _strings:  # a variable cannot hold a list
                check_value(key, value, f"the environment ({_env_name(key)})")
        merged = _merge(DEFAULTS, project)
        merged = _merge(merged, local)
        merged = _merge(merged, env)
        return cls(root, merged)

    def get(self, key: str, default: object = None) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, key: str) -> dict[str, Any]:
        value = self.get(key, {})
        return dict(value) if isinstance(value, Mapping) else {}

    def local_pack_threshold(self) -> int:
        """Objects smaller than this are packed in the local cache; 0 when the link mode needs
        one file per object (hardlink, symlink)."""
        if self.link_modes()[0] in ("hardlink", "symlink"):
            return 0
        return int(self.get("cache.pack_threshold") or 0)

    def link_modes(self) -> tuple[str, ...]:
        modes = tuple(m.strip() for m in str(self.get("cache.link")).split(",") if m.strip())
        unknown = [m for m in modes if m not in LINK_MODES]
        if unknown or not modes:
            raise ConfigError(
                f"cache.link = {self.get('cache.link')!r} is not valid: use a comma list of "
                + ", ".join(LINK_MODES)
            )
        return modes


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(_flatten(value, full + "."))
        else:
            out.append((full, value))
    return out


def set_value(root: Path, key: str, value: object, *, local: bool) -> Path:
    """Write one key into ``tether.toml`` (shared) or ``.tether/config.toml`` (local). Only
    that key's line changes: comments and the rest of the file stay as they were written."""
    if not re.fullmatch(r"[a-z0-9_-]+(\.[a-z0-9_-]+)+", key, re.I):
        raise ConfigError(f"{key!r} is not a key: use section.name, e.g. cache.link")
    if not local and is_secret(key, value):
        raise ConfigError(
            f"{key} looks like a credential and tether.toml is committed: "
            "add --local to keep it in .tether/config.toml (or use an environment variable)"
        )
    check_value(key, value)
    path = root / (LOCAL_FILE if local else PROJECT_FILE)
    tree = _read_toml(path)
    _set_path(tree, key, value)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    atomic_write(path, _edited(text, key, value, tree).encode(), mode=0o600 if local else 0o644)
    return path


def unset_local(root: Path, keys: list[str]) -> list[str]:
    """Remove ``keys`` from ``.tether/config.toml`` (local, written by Tether); the ones that
    were there. The file is rewritten whole and stays 0600."""
    import tomli_w

    path = root / LOCAL_FILE
    tree = _read_toml(path)
    removed = []
    for key in keys:
        *parents, leaf = key.split(".")
        node: Any = tree
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            del node[leaf]
            removed.append(key)
    if removed:
        atomic_write(path, tomli_w.dumps(tree).encode(), mode=0o600)
    return removed


def _edited(text: str, key: str, value: object, expected: dict[str, Any]) -> str:
    """``text`` with ``key`` set to ``value`` by changing (or adding) one line; when the file is
    laid out so that one line cannot do it (dotted keys, inline tables), rewritten whole with
    its opening comments kept. Either way the result reads back as ``expected``."""
    import tomli_w

    table, _, leaf = key.rpartition(".")
    line = tomli_w.dumps({leaf: value}).rstrip("\n")
    lines = text.splitlines()
    start = _table_start(lines, table)
    if start is None:
        lines += (["", f"[{table}]"] if lines and lines[-1].strip() else [f"[{table}]"]) + [line]
    else:
        stop = next((i for i in range(start + 1, len(lines)) if _is_header(lines[i])), len(lines))
        pattern = re.compile(rf"\s*(\"?){re.escape(leaf)}\1\s*=")
        found = [i for i in range(start + 1, stop) if pattern.match(lines[i])]
        if found:
            lines[found[0]] = line
        else:
            last = max([start, *(i for i in range(start + 1, stop) if lines[i].strip())])
            lines.insert(last + 1, line)
    out = "\n".join(lines) + "\n"
    try:
        if tomllib.loads(out) == expected:
            return out
    except tomllib.TOMLDecodeError:
        pass
    head = [x for x in text.splitlines()[: _first_setting(text)] if x.startswith("#")]
    return "\n".join(head) + ("\n" if head else "") + tomli_w.dumps(expected)


def _is_header(line: str) -> bool:
    return line.lstrip().startswith("[")


def _table_start(lines: list[str], table: str) -> int | None:
    """The line of the ``[table]`` header (however its key is spelled), or None."""
    want = table.split(".")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("[") or stripped.startswith("[["):
            continue
        try:
            node: Any = tomllib.loads(stripped.split("#")[0])
        except tomllib.TOMLDecodeError:
            continue
        path = []
        while isinstance(node, dict) and len(node) == 1:
            name, node = next(iter(node.items()))
            path.append(name)
        if path == want:
            return i
    return None


def _first_setting(text: str) -> int:
    lines = text.splitlines()
    return next((i for i, x in enumerate(lines) if x.strip() and not x.startswith("#")), len(lines))


def all_items(config: Config) -> list[tuple[str, Any]]:
    return _flatten(config.data)
