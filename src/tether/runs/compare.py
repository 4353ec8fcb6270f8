"""Comparing runs: side by side (``runs compare``) and the four-pillar explanation of why two
runs differ (``tether diff``): code, data, environment, parameters, then metrics and a ranked
list of likely causes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from tether.errors import MissingObjectError
from tether.objects.tree import HEADER as TREE_HEADER
from tether.objects.tree import diff_trees
from tether.runs.codediff import CodeDiff, code_causes, code_diff
from tether.runs.record import load_series, number
from tether.runs.uncaptured import script_of, uncaptured
from tether.workspace.repo import Workspace


def environment(ws: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    oid = record.get("env")
    if not oid:
        return {}
    try:
        env: dict[str, Any] = json.loads(ws.store.read_bytes(oid))
    except FileNotFoundError:
        raise MissingObjectError([oid], hint="the run's environment: run `tether pull`") from None
    return env


def series(ws: Workspace, record: dict[str, Any]) -> dict[str, list[tuple[int, float, float]]]:
    oid = record.get("series")
    if not oid:
        return {}
    try:
        return load_series(ws.store.read_bytes(oid), oid)
    except FileNotFoundError:
        raise MissingObjectError([oid], hint="the run's metric history: `tether pull`") from None


# -- runs compare ---------------------------------------------------------------------------
@dataclass
class Comparison:
    runs: list[dict[str, Any]]  # id, name, status, experiment
    params: dict[str, list[str | None]]
    metrics: dict[str, list[float | None]]
    differ: set[str] = field(default_factory=set)  # "params.lr", "metrics.acc" that differ


def compare(ws: Workspace, records: list[dict[str, Any]]) -> Comparison:
    params: dict[str, list[str | None]] = {}
    metrics: dict[str, list[float | None]] = {}
    for key in sorted({k for r in records for k in r.get("params", {})}):
        params[key] = [r.get("params", {}).get(key) for r in records]
    for key in sorted({k for r in records for k in r.get("metrics", {})}):
        metrics[key] = [
            number(r["metrics"][key]["last"]) if key in r.get("metrics", {}) else None
            for r in records
        ]
    differ = {f"params.{k}" for k, v in params.items() if len(set(v)) > 1}
    differ |= {f"metrics.{k}" for k, v in metrics.items() if len({_same(x) for x in v}) > 1}
    heads = [
        {"id": r["id"], "name": r["name"], "status": r["status"], "experiment": r["experiment"]}
        for r in records
    ]
    return Comparison(heads, params, metrics, differ)


def _same(x: float | None) -> object:
    return "nan" if x is not None and math.isnan(x) else x


# -- tether diff ----------------------------------------------------------------------------
@dataclass
class DataDiff:
    role: str  # input | output | tracked
    path: str
    id_a: str | None
    id_b: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    edited: bool = False  # a tracked path edited and not re-added in either run
    missing_in: list[str] = field(default_factory=list)  # "A", "B": tracked but absent then


@dataclass
class EnvDiff:
    python: tuple[str, str] | None = None
    platform: tuple[str, str] | None = None
    added: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock_files: list[str] = field(default_factory=list)
    seeds: tuple[list[int], list[int]] | None = None
    determinism: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    env_vars: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # allowed
    pythonpath: tuple[list[str], list[str]] | None = None
    # variables outside the allow-list (names only): set in A only, in B only; set in both,
    # whose values were not recorded (a change there is not seen)
    names_a: list[str] = field(default_factory=list)
    names_b: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)


@dataclass
class RunDiff:
    a: dict[str, str]
    b: dict[str, str]
    code: CodeDiff
    data: list[DataDiff]
    env: EnvDiff
    params: dict[str, tuple[str | None, str | None]]
    metrics: dict[str, tuple[float | None, float | None]]
    causes: list[str]
    uncaptured: list[str] = field(default_factory=list)  # what either record lacks
    command: tuple[list[str], list[str]] | None = None  # the command lines, when they differ
    cwd: tuple[str | None, str | None] | None = None  # the folders they ran in, when they differ
    results: str = "none"  # "differ", "agree" (metrics and outputs) or "none" (neither logged)
    stage_deps: list[str] | None = None  # two runs of one pipeline stage: the paths it reads
    notes: list[str] = field(default_factory=list)  # what the causes leave out, and why

    @property
    def same_run(self) -> bool:
        return self.a["id"] == self.b["id"]


def diff(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> RunDiff:
    code = code_diff(ws, a.get("code") or {}, b.get("code") or {})
    data = _data(ws, a.get("data") or {}, b.get("data") or {})
    env = _env(ws, a, b)
    keys = sorted(set(a.get("params", {})) | set(b.get("params", {})))
    params = {
        k: (a["params"].get(k), b["params"].get(k))
        for k in keys
        if not _same_param(a.get("params", {}).get(k), b.get("params", {}).get(k))
    }
    cmp = compare(ws, [a, b])
    metrics = {k: (v[0], v[1]) for k, v in cmp.metrics.items()}
    heads = [{"id": r["id"], "name": r["name"]} for r in (a, b)]
    result = RunDiff(heads[0], heads[1], code, data, env, params, metrics, [])
    ca, cb = list(a.get("command") or []), list(b.get("command") or [])
    if script_of(ca) != script_of(cb):
        result.command = (ca, cb)
    if a.get("cwd") is not None and b.get("cwd") is not None and a["cwd"] != b["cwd"]:
        result.cwd = (a["cwd"], b["cwd"])  # recorded since issue 11 (not by pipeline runs)
    _not_ranked(result, a, b)
    result.results = _results(a, b, metrics, data)
    result.stage_deps = _stage_deps(a, b)
    result.causes = _causes(result)
    coded = a.get("exit_code") is not None and b.get("exit_code") is not None
    ended = [_ended(r, coded) for r in (a, b)]
    if ended[0] != ended[1]:  # one failed or was killed: the most direct cause of all
        result.causes.insert(0, f"status: {ended[0]} → {ended[1]}")
    result.uncaptured = [*uncaptured(ws, a, "A"), *uncaptured(ws, b, "B")]
    return result


# a reproduction's tag: the variables its scrubbed environment withheld (comma-separated names)
WITHHELD_TAG = "withheld"


def _not_ranked(result: RunDiff, a: dict[str, Any], b: dict[str, Any]) -> None:
    """Variables a reproduction (B) was not given on purpose are set in A only: named in a
    note, not ranked as a cause."""
    tags = b.get("tags") or {}
    if tags.get("reproduction_of") != a.get("id") or not tags.get(WITHHELD_TAG):
        return
    held = set(str(tags[WITHHELD_TAG]).split(","))
    gone = [n for n in result.env.names_a if n in held]
    if gone:
        result.env.names_a = [n for n in result.env.names_a if n not in held]
        result.notes.append(
            f"{listed(gone)} withheld from the reproduction, so set in A only: not ranked"
        )


def _stage_deps(a: dict[str, Any], b: dict[str, Any]) -> list[str] | None:
    """For two runs of one pipeline stage, the deps it reads (its runs' inputs); else None."""
    stages = [(r.get("tags") or {}).get("stage") for r in (a, b)]
    if not stages[0] or stages[0] != stages[1]:
        return None
    return sorted({p for r in (a, b) for p in (r.get("data") or {}).get("inputs") or {}})


def _ended(record: dict[str, Any], both_coded: bool) -> str:
    """How a run ended: ``killed (exit 143)``; the exit code only when both runs have one (a
    run logged in-process, or a pipeline run, has none: that alone is no difference)."""
    code = record.get("exit_code")
    return f"{record.get('status')}" + (f" (exit {code})" if both_coded else "")


def _results(
    a: dict[str, Any],
    b: dict[str, Any],
    metrics: dict[str, tuple[float | None, float | None]],
    data: list[DataDiff],
) -> str:
    """Whether the two runs' results (metrics and outputs) differ, agree, or were not logged."""
    outs = [(r.get("data") or {}).get("outputs") or {} for r in (a, b)]
    if not metrics and not any(outs):
        return "none"
    moved = any(_same(x) != _same(y) for x, y in metrics.values())
    return "differ" if moved or any(c.role == "output" for c in data) else "agree"


def _data(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> list[DataDiff]:
    out = []
    edited = set(a.get("modified") or []) | set(b.get("modified") or [])
    for role, key in (("input", "inputs"), ("output", "outputs"), ("tracked", "pointers_start")):
        left, right = _read(a, key), _read(b, key)
        for path in sorted(set(left) | set(right)):
            if left.get(path) == right.get(path) or (role == "input" and path in edited):
                continue
            change = DataDiff(role, path, left.get(path), right.get(path), edited=path in edited)
            if role == "tracked":
                change.missing_in = [n for n, r in (("A", a), ("B", b)) if path in _gone(r)]
            _inside(ws, change)
            out.append(change)
    return out


def _gone(data: dict[str, Any]) -> list[str]:
    return list(data.get("missing") or [])


def _read(data: dict[str, Any], key: str) -> dict[str, str | None]:
    """``data[key]``; for tracked data, what the run read: an edited path's real content, and
    None for one missing from the work tree."""
    found: dict[str, str | None] = dict(data.get(key) or {})
    if key == "pointers_start":
        inputs = data.get("inputs") or {}
        found.update({p: inputs[p] for p in data.get("modified") or [] if p in inputs})
        found.update({p: None for p in data.get("missing") or [] if p in found})
    return found


def _inside(ws: Workspace, change: DataDiff) -> None:
    """For two versions of a folder, which files inside changed (when both manifests are here)."""
    ids = (change.id_a, change.id_b)
    if not all(ids) or not all(ws.store.has(i) for i in ids if i):
        return
    if not all(ws.store.read_head(i, len(TREE_HEADER)) == TREE_HEADER for i in ids if i):
        return
    d = diff_trees(ws.store.load_tree(ids[0] or ""), ws.store.load_tree(ids[1] or ""))
    change.added, change.removed, change.modified = list(d.added), list(d.removed), list(d.modified)


def _env(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> EnvDiff:
    out = env_drift(environment(ws, a), environment(ws, b))
    if (a.get("seeds") or []) != (b.get("seeds") or []):
        out.seeds = (list(a.get("seeds") or []), list(b.get("seeds") or []))
    return out


def env_drift(ea: dict[str, Any], eb: dict[str, Any]) -> EnvDiff:
    """How environment ``eb`` differs from ``ea`` (two captured environments)."""
    out = EnvDiff()
    if not (_interpreter_known(ea) and _interpreter_known(eb)):
        # one side's interpreter is unknown: its empty package list is no evidence of change
        ea, eb = ({k: v for k, v in e.items() if k not in ("python", "packages")} for e in (ea, eb))
    pa, pb = (ea.get("python") or {}).get("version"), (eb.get("python") or {}).get("version")
    if pa != pb:
        out.python = (str(pa), str(pb))
    fa, fb = _platform(ea), _platform(eb)
    if fa != fb:
        out.platform = (fa, fb)
    ka, kb = ea.get("packages") or {}, eb.get("packages") or {}
    out.added = {n: kb[n]["version"] for n in sorted(kb.keys() - ka.keys())}
    out.removed = {n: ka[n]["version"] for n in sorted(ka.keys() - kb.keys())}
    out.changed = {
        n: (_version(ka[n]), _version(kb[n]))
        for n in sorted(ka.keys() & kb.keys())
        if ka[n] != kb[n]
    }
    la, lb = ea.get("lock_files") or {}, eb.get("lock_files") or {}
    out.lock_files = sorted(p for p in set(la) | set(lb) if la.get(p) != lb.get(p))
    da, db = ea.get("determinism") or {}, eb.get("determinism") or {}
    out.determinism = {
        k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)
    }
    if "pythonpath" in ea and "pythonpath" in eb and ea["pythonpath"] != eb["pythonpath"]:
        out.pythonpath = (list(ea["pythonpath"]), list(eb["pythonpath"]))
    if "env_vars" in ea and "env_vars" in eb:  # (an environment built for a reproduction has none)
        va, vb = ea.get("env_vars") or {}, eb.get("env_vars") or {}
        out.env_vars = {
            k: (va.get(k), vb.get(k))
            for k in sorted(set(va) | set(vb))
            if va.get(k) != vb.get(k) and k not in da and k not in db  # said as determinism
        }
    if "env_names" in ea and "env_names" in eb:  # recorded since issue 11
        _names(out, ea, eb)
    return out


# set by Tether for the command it launches, or by the shell and terminal: not the user's choice
_PLUMBING = {"TETHER_RUN_ID", "TETHER_RUN_DIR", "PYTHONUNBUFFERED", "_", "OLDPWD", "PWD"}
_PLUMBING |= {"SHLVL", "COLUMNS", "LINES"}


def _names(out: EnvDiff, ea: dict[str, Any], eb: dict[str, Any]) -> None:
    """The variables outside the allow-list (whose values are compared) set in one run only,
    and those set in both whose values neither run recorded."""
    valued = {*(ea.get("env_vars") or {}), *(eb.get("env_vars") or {})}
    valued |= {*(ea.get("determinism") or {}), *(eb.get("determinism") or {})}
    na, nb = (set(e.get("env_names") or []) - valued - _PLUMBING for e in (ea, eb))
    out.names_a, out.names_b, out.unrecorded = sorted(na - nb), sorted(nb - na), sorted(na & nb)


def _version(info: dict[str, Any]) -> str:
    """A package's version, and for an editable install of another git repository its commit
    (``1.0 @ 3f2a9c1d0e``, ``+dirty`` with uncommitted changes)."""
    source = info.get("source") or {}
    if not isinstance(source, dict) or "dirty" not in source:
        return str(info.get("version"))
    dirty = "+dirty" if source.get("dirty") else ""
    return f"{info.get('version')} @ {str(source.get('commit'))[:10]}{dirty}"


def _platform(env: dict[str, Any]) -> str:
    p = env.get("platform") or {}
    return f"{p.get('system', '?')} {p.get('release', '?')} {p.get('machine', '?')}"


def _causes(d: RunDiff) -> list[str]:
    """Likely causes, most direct first: what the user chose, then what they fed, then what
    they ran, then where it ran."""
    out = [f"parameter {k}: {va} → {vb}" for k, (va, vb) in d.params.items()]
    if d.command and _unexplained(d.command, set(d.params)):
        out.append(f"command: {shown(d.command[0])} → {shown(d.command[1])}")
    if d.cwd:
        out.append(f"working folder: {folder_name(d.cwd[0])} → {folder_name(d.cwd[1])}")
    for c in d.data:
        if c.role == "input" or (
            c.role == "tracked" and not any(x.path == c.path for x in d.data if x.role == "input")
        ):
            inside = len(c.added) + len(c.removed) + len(c.modified)
            detail = f" ({inside} files inside)" if inside else ""
            detail += " (edited, not re-added)" if c.edited else ""
            detail += f" (missing from the work tree in {' and '.join(c.missing_in)})" * bool(
                c.missing_in
            )
            out.append(
                f"{'input' if c.role == 'input' else 'tracked data'} {c.path} changed{detail}"
            )
    if d.env.seeds and not any("seed" in k.lower() for k in d.params):
        out.append(f"seed: {d.env.seeds[0]} → {d.env.seeds[1]}")
    code, notes = code_causes(d.code, d.stage_deps)
    out += code
    d.notes += notes
    out += [f"code: {s}" for s in d.code.submodules]
    for path, (x, y) in d.code.skipped.items():
        if x != y:
            size = " → ".join(_stored(i) for i in (x, y))
            out.append(f"untracked {path} (too big for the diff) differs: {size}")
    for name, (va, vb) in d.env.changed.items():
        out.append(f"package {name}: {va} → {vb}")
    if d.env.added or d.env.removed:
        out.append(f"packages: {len(d.env.added)} added, {len(d.env.removed)} removed")
    if d.env.python:
        out.append(f"python: {d.env.python[0]} → {d.env.python[1]}")
    if d.env.lock_files:
        out.append(f"lock files changed: {', '.join(d.env.lock_files)}")
    if d.env.determinism:
        out.append("determinism settings: " + ", ".join(d.env.determinism))
    if d.env.pythonpath:
        out.append(f"PYTHONPATH: {_paths(d.env.pythonpath[0])} → {_paths(d.env.pythonpath[1])}")
    for var, (was, now) in d.env.env_vars.items():
        out.append(f"environment variable {var}: {_var(was)} → {_var(now)}")
    for side, names in (("A", d.env.names_a), ("B", d.env.names_b)):
        if names:
            out.append(f"environment variables set in {side} only: {listed(names)}")
    if d.env.platform:
        out.append(f"platform: {d.env.platform[0]} → {d.env.platform[1]}")
    return out


def shown(argv: list[str]) -> str:
    """A command line as a shell would take it."""
    import shlex

    return shlex.join(argv) if argv else "(none recorded)"


def folder_name(rel: str | None) -> str:
    return "(outside the repository)" if rel is None else ("the top" if rel == "." else rel)


def _stored(info: dict[str, Any] | None) -> str:
    """How a run kept an untracked file too big for (another run's) diff."""
    if not info:
        return "absent"
    size = f"{info['size']} bytes" if info.get("size") is not None else "a file"
    return f"{size} in its diff" if info.get("in_diff") else size


def listed(names: list[str], most: int = 8) -> str:
    """Names, the first ``most`` of them and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _paths(entries: list[str]) -> str:
    return ":".join(entries) or "(unset)"


def _var(value: str | None) -> str:
    return "(unset)" if value is None else repr(value)


def _unexplained(command: tuple[list[str], list[str]], params: set[str]) -> bool:
    """Whether two command lines differ by more than the ``--key value`` options whose
    parameters are already listed as differing."""
    return _without(script_of(command[0]), params) != _without(script_of(command[1]), params)


def _without(argv: list[str], params: set[str]) -> list[str]:
    """``argv`` without its ``--key value`` / ``--key=value`` options named in ``params``
    (read as ``tether run`` reads parameters from a command line)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        key, eq, _ = arg[2:].partition("=")
        if arg.startswith("--") and len(arg) > 2 and key.replace("-", "_") in params:
            takes_value = not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            i += 2 if takes_value else 1
            continue
        out.append(arg)
        i += 1
    return out


def _interpreter_known(env: dict[str, Any]) -> bool:
    info = env.get("interpreter")
    return not isinstance(info, dict) or bool(info.get("known"))


def _same_param(a: str | None, b: str | None) -> bool:
    from tether.runs.live import same_value

    return a == b or (a is not None and b is not None and same_value(a, b))
