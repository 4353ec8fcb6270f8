"""Comparing runs: side by side (``runs compare``) and the four-pillar explanation of why two
runs differ (``tether diff``): code, data, environment, parameters, then metrics and a ranked
list of likely causes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from tether.errors import GitError, MissingObjectError
from tether.gitio import git
from tether.objects.tree import HEADER as TREE_HEADER
from tether.objects.tree import diff_trees
from tether.runs.ledger import LEDGER
from tether.runs.record import load_series, number
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
        return load_series(ws.store.read_bytes(oid))
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
class CodeDiff:
    commit_a: str | None
    commit_b: str | None
    ahead: int = 0  # commits in b not in a
    behind: int = 0
    files: list[str] = field(default_factory=list)  # changed between the commits
    dirty_a: list[str] = field(default_factory=list)
    dirty_b: list[str] = field(default_factory=list)
    same_patch: bool = True


@dataclass
class DataDiff:
    role: str  # input | output | tracked
    path: str
    id_a: str | None
    id_b: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)


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


def diff(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> RunDiff:
    code = _code(ws, a.get("code") or {}, b.get("code") or {})
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
    result.causes = _causes(result)
    return result


def _code(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> CodeDiff:
    out = CodeDiff(a.get("commit"), b.get("commit"))
    out.dirty_a, out.dirty_b = list(a.get("changed") or []), list(b.get("changed") or [])
    out.same_patch = a.get("diff") == b.get("diff")
    if out.commit_a and out.commit_b and out.commit_a != out.commit_b:
        try:
            # Tether's own ledger commits are not code changes
            skip = ("--", ".", f":(exclude){LEDGER}")
            span = f"{out.commit_a}...{out.commit_b}"
            counts = git(ws.root, "rev-list", "--left-right", "--count", span, *skip)
            out.behind, out.ahead = (int(x) for x in counts.split())
            names = git(ws.root, "diff", "--name-only", "-z", out.commit_a, out.commit_b, *skip)
            out.files = [n for n in names.decode().split("\0") if n]
        except GitError:
            out.files = ["(a commit is not in this clone: `git fetch` it)"]
    return out


def _data(ws: Workspace, a: dict[str, Any], b: dict[str, Any]) -> list[DataDiff]:
    out = []
    for role, key in (("input", "inputs"), ("output", "outputs"), ("tracked", "pointers_start")):
        left, right = a.get(key) or {}, b.get(key) or {}
        for path in sorted(set(left) | set(right)):
            if left.get(path) == right.get(path):
                continue
            change = DataDiff(role, path, left.get(path), right.get(path))
            _inside(ws, change)
            out.append(change)
    return out


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
        n: (ka[n]["version"], kb[n]["version"])
        for n in sorted(ka.keys() & kb.keys())
        if ka[n] != kb[n]
    }
    la, lb = ea.get("lock_files") or {}, eb.get("lock_files") or {}
    out.lock_files = sorted(p for p in set(la) | set(lb) if la.get(p) != lb.get(p))
    da, db = ea.get("determinism") or {}, eb.get("determinism") or {}
    out.determinism = {
        k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)
    }
    return out


def _platform(env: dict[str, Any]) -> str:
    p = env.get("platform") or {}
    return f"{p.get('system', '?')} {p.get('release', '?')} {p.get('machine', '?')}"


def _causes(d: RunDiff) -> list[str]:
    """Likely causes, most direct first: what the user chose, then what they fed, then what
    they ran, then where it ran."""
    out = [f"parameter {k}: {va} → {vb}" for k, (va, vb) in d.params.items()]
    for c in d.data:
        if c.role == "input" or (
            c.role == "tracked" and not any(x.path == c.path for x in d.data if x.role == "input")
        ):
            inside = len(c.added) + len(c.removed) + len(c.modified)
            detail = f" ({inside} files inside)" if inside else ""
            out.append(
                f"{'input' if c.role == 'input' else 'tracked data'} {c.path} changed{detail}"
            )
    if d.env.seeds and not any("seed" in k.lower() for k in d.params):
        out.append(f"seed: {d.env.seeds[0]} → {d.env.seeds[1]}")
    apart = d.code.ahead + d.code.behind
    if d.code.commit_a != d.code.commit_b and (apart or d.code.files):
        out.append(f"code: {_n(apart, 'commit')} apart, {_n(len(d.code.files), 'file')} changed")
    if not d.code.same_patch:
        out.append("code: uncommitted changes differ")
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
    if d.env.platform:
        out.append(f"platform: {d.env.platform[0]} → {d.env.platform[1]}")
    return out


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _same_param(a: str | None, b: str | None) -> bool:
    from tether.runs.live import same_value

    return a == b or (a is not None and b is not None and same_value(a, b))
