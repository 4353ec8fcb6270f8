"""What the UI reads of a project's runs on the server: a run's sealed record, and a metric's
history reduced for a chart of a given pixel width.

A long series is reduced with M4 aggregation (Jugel et al., VLDB 2014): the visible x range is
cut into one bucket per pixel column and each bucket keeps its first, last, smallest and
largest point, so a spike never vanishes and the line between two columns is the one the raw
series draws. Once the range holds at most four points per pixel, the raw points are sent: a
zoomed chart is exact. NaN and infinities are not points of a line: they are returned apart,
as marks, never dropped. Parsed series are kept (a few per process) so a zoom does not parse
the run's history document again.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import FormatError, MissingRunError, TetherError

if TYPE_CHECKING:
    from tether.team.hub import Hub

RAW_PER_PIXEL = 4
DIFF_SHOWN = 256 * 1024
_KEPT = 16  # parsed histories kept per process


@dataclass(frozen=True)
class Column:
    """One metric's history as columns, sorted by step: finite points, and the others."""

    steps: list[float]
    values: list[float]
    marks: list[tuple[float, str]]  # (step, "NaN" | "Infinity" | "-Infinity")


_cache: OrderedDict[tuple[str, str], dict[str, Column]] = OrderedDict()
_lock = threading.Lock()


def run_record(hub: Hub, project: str, run_id: str) -> dict[str, Any]:
    """The sealed record of a run the server accepted (a live run has none yet: an error)."""
    from tether._documents import loads_json

    state = hub.run_state(project, run_id)
    if not state.get("record"):
        raise MissingRunError(f"run {run_id} is still running: its record is sealed as it ends")
    doc = loads_json(hub.blobs.read_bytes(project, state["record"]), f"record of {run_id}")
    if not isinstance(doc, dict):
        raise FormatError(f"the record of run {run_id} is not a JSON object")
    return doc


def run_details(hub: Hub, project: str, run_id: str) -> dict[str, Any]:
    """A run's record with what its pillars link: the uncommitted diff (as text, the first
    :data:`DIFF_SHOWN` bytes) and the environment document. A linked object the server lacks
    is named, not an error: the page still shows the rest."""
    from tether._documents import loads_json

    record = run_record(hub, project, run_id)
    out: dict[str, Any] = {"record": record, "diff": None, "env": None, "missing": []}
    diff = (record.get("code") or {}).get("diff")
    env = record.get("env")
    for oid, key in ((diff, "diff"), (env, "env")):
        if not isinstance(oid, str):
            continue
        try:
            data = hub.blobs.read_bytes(project, oid)
        except (FileNotFoundError, TetherError):
            out["missing"].append(oid)
            continue
        if key == "diff":
            out["diff"] = data[:DIFF_SHOWN].decode("utf-8", "replace")
            out["diff_cut"] = len(data) > DIFF_SHOWN
        else:
            doc = loads_json(data, f"environment of {run_id}")
            out["env"] = doc if isinstance(doc, dict) else None
    return out


def _columns(hub: Hub, project: str, oid: str) -> dict[str, Column]:
    from tether.runs.record import load_series

    with _lock:
        if (project, oid) in _cache:
            _cache.move_to_end((project, oid))
            return _cache[(project, oid)]
    out: dict[str, Column] = {}
    for key, points in load_series(hub.blobs.read_bytes(project, oid), oid).items():
        points = sorted(points, key=lambda p: p[0])
        finite = [(float(s), v) for s, _, v in points if math.isfinite(v)]
        marks = [(float(s), _mark(v)) for s, _, v in points if not math.isfinite(v)]
        out[key] = Column([s for s, _ in finite], [v for _, v in finite], marks)
    with _lock:
        _cache[(project, oid)] = out
        while len(_cache) > _KEPT:
            _cache.popitem(last=False)
    return out


def _mark(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def metric_points(
    hub: Hub,
    project: str,
    run_id: str,
    key: str,
    *,
    start: float | None = None,
    end: float | None = None,
    width: int = 1000,
) -> dict[str, Any]:
    """The points of ``key`` between steps ``start`` and ``end`` for a chart ``width`` pixels
    wide: raw when few enough, else M4-reduced (``reduced``), with the total in range."""
    start = start if start is not None and math.isfinite(start) else None
    end = end if end is not None and math.isfinite(end) else None
    record = run_record(hub, project, run_id)
    oid = record.get("series")
    columns = _columns(hub, project, oid) if oid else {}
    if key not in columns:
        raise MissingRunError(f"run {run_id} logged no metric {key!r}")
    col = columns[key]
    lo = 0 if start is None else bisect.bisect_left(col.steps, start)
    hi = len(col.steps) if end is None else bisect.bisect_right(col.steps, end)
    steps, values = col.steps[lo:hi], col.values[lo:hi]
    marks = [
        {"step": s, "value": m}
        for s, m in col.marks
        if (start is None or s >= start) and (end is None or s <= end)
    ]
    width = max(1, min(width, 10_000))
    reduced = len(steps) > RAW_PER_PIXEL * width
    if reduced:
        steps, values = m4(steps, values, width)
    return {
        "key": key,
        "total": hi - lo,
        "reduced": reduced,
        "steps": steps,
        "values": values,
        "marks": marks,
    }


def m4(steps: list[float], values: list[float], width: int) -> tuple[list[float], list[float]]:
    """First, last, min and max of each of ``width`` buckets of equal step range, in order."""
    x0, x1 = steps[0], steps[-1]
    span = (x1 - x0) or 1.0
    keep: list[int] = []
    bucket, first = -1, 0
    lo_i = hi_i = 0

    def close(last: int) -> None:
        keep.extend(sorted({first, lo_i, hi_i, last}))

    for i, x in enumerate(steps):
        b = min(width - 1, int((x - x0) / span * width))
        if b != bucket:
            if bucket >= 0:
                close(i - 1)
            bucket, first, lo_i, hi_i = b, i, i, i
        else:
            if values[i] < values[lo_i]:
                lo_i = i
            if values[i] > values[hi_i]:
                hi_i = i
    close(len(steps) - 1)
    return [steps[i] for i in keep], [values[i] for i in keep]


class _Objects:
    """The server's objects of one project, read as a workspace's store is (what the run
    comparison in :mod:`tether.runs.compare` reads)."""

    def __init__(self, hub: Hub, project: str) -> None:
        self.hub, self.project = hub, project

    def read_bytes(self, oid: str) -> bytes:
        from tether.errors import MissingObjectError

        try:
            return self.hub.blobs.read_bytes(self.project, oid)
        except MissingObjectError:
            raise FileNotFoundError(oid) from None

    def has(self, oid: str) -> bool:
        try:
            self.hub.blobs.stat(self.project, oid)
        except TetherError:
            return False
        return True

    def read_head(self, oid: str, n: int) -> bytes:
        return self.read_bytes(oid)[:n]

    def load_tree(self, oid: str) -> Any:
        from tether.objects.tree import Tree

        return Tree.from_bytes(self.read_bytes(oid), oid)


class _Project:
    """What a run comparison reads of a workspace: its objects, and a git repository (the
    project's on the server) for the commits between two runs."""

    def __init__(self, hub: Hub, project: str) -> None:
        self.store = _Objects(hub, project)
        self.root = hub.mirrors.path(project)


def diff_runs(hub: Hub, project: str, a: str, b: str) -> Any:
    """The four-pillar difference of two runs with its ranked likely causes, as ``tether
    diff`` gives it in a clone, from the records and objects the server holds."""
    from tether.runs.compare import diff

    view: Any = _Project(hub, project)
    return diff(view, run_record(hub, project, a), run_record(hub, project, b))


@dataclass(frozen=True)
class Artifact:
    """One file a run logged as an artifact (a file of a logged folder too)."""

    name: str  # as the run logged it, then the path inside the folder
    id: str
    size: int


def artifacts(hub: Hub, project: str, record: dict[str, Any]) -> list[Artifact]:
    """Every file of a run's artifacts (a folder's files listed from its manifest; a folder
    whose manifest the server lacks is left out)."""
    from tether.objects.tree import HEADER as TREE_HEADER
    from tether.objects.tree import Tree

    out: list[Artifact] = []
    store = _Objects(hub, project)
    logged = record.get("artifacts") or {}
    for name, oid in sorted(logged.items() if isinstance(logged, dict) else []):
        if not isinstance(oid, str):
            continue
        try:
            size = hub.blobs.stat(project, oid).size
            if size < (1 << 26) and store.read_head(oid, len(TREE_HEADER)) == TREE_HEADER:
                tree = Tree.from_bytes(store.read_bytes(oid), oid)
                out += [Artifact(f"{name}/{e.path}", e.id, e.size) for e in tree.entries]
                continue
        except (FileNotFoundError, TetherError):
            continue
        out.append(Artifact(name, oid, size))
    return out


def artifact(hub: Hub, project: str, run_id: str, name: str) -> tuple[Artifact, bytes]:
    """The artifact ``name`` of a run (one listed by :func:`artifacts`) and its bytes."""
    found = {a.name: a for a in artifacts(hub, project, run_record(hub, project, run_id))}
    if name not in found:
        raise MissingRunError(f"run {run_id} logged no artifact {name!r}")
    return found[name], hub.blobs.read_bytes(project, found[name].id)


GRAPH_NODES = 400  # a lineage graph larger than this is cut, and says so


def lineage(
    hub: Hub,
    project: str,
    *,
    run: str | None = None,
    obj: str | None = None,
    direction: str = "up",
    depth: int = 3,
) -> dict[str, Any]:
    """The lineage graph from a run or a data object, ``depth`` levels of runs up (what it came
    from) or down (what was built from it), from the server's index: nodes (runs and data) and
    edges (data → the run that read it, a run → the data it wrote)."""
    from tether.errors import UsageError

    if direction not in ("up", "down"):
        raise UsageError(f"direction is 'up' or 'down', not {direction!r}")
    if (run is None) == (obj is None):
        raise UsageError("give a run or a data object to start the lineage from")
    index = hub.index(project)
    nodes: dict[str, dict[str, Any]] = {}
    edges: set[tuple[str, str, str]] = set()
    up = direction == "up"

    def add_runs(ids: set[str]) -> None:
        for r in index.get_runs(sorted(ids - {k[4:] for k in nodes})):
            nodes[f"run:{r.id}"] = {"id": f"run:{r.id}", "kind": "run", "label": r.name or r.id[:8],
                                    "status": r.status, "run": r.id}  # fmt: skip

    def add_object(oid: str, path: str) -> str:
        key = f"obj:{oid}"
        nodes.setdefault(key, {"id": key, "kind": "data", "label": path, "object": oid})
        return key

    if run is not None:
        add_runs({run})
        if f"run:{run}" not in nodes:
            raise MissingRunError(f"project {project} has no run {run}")
        root, runs, objects = f"run:{run}", {run}, set()
    else:
        assert obj is not None
        root, runs, objects = add_object(obj, obj[7:19]), set(), {obj}
    truncated = False
    for _ in range(max(1, min(depth, 20))):
        found = index.get_runs(sorted(runs))
        for r in found:  # each run's data on the side being walked
            for path, oid in (r.inputs if up else r.outputs).items():
                key = add_object(oid, path)
                edges.add((key, f"run:{r.id}", path) if up else (f"run:{r.id}", key, path))
                objects.add(oid)
        if not objects:
            break
        rows = index.data_rows("output" if up else "input", objects=sorted(objects))
        runs = {row.run_id for row in rows} - {k[4:] for k in nodes if k.startswith("run:")}
        add_runs({row.run_id for row in rows})
        for row in rows:
            key = add_object(row.object, row.path)
            edges.add(
                (f"run:{row.run_id}", key, row.path) if up else (key, f"run:{row.run_id}", row.path)
            )
        objects = set()
        if len(nodes) > GRAPH_NODES:
            truncated = True
            break
        if not runs:
            break
    kept = dict(list(nodes.items())[:GRAPH_NODES])
    return {
        "root": root,
        "direction": direction,
        "nodes": list(kept.values()),
        "edges": [
            {"source": a, "target": b, "label": p}
            for a, b, p in sorted(edges)
            if a in kept and b in kept
        ],
        "truncated": truncated or len(nodes) > GRAPH_NODES,
    }


def governance(hub: Hub, project: str, log: str) -> dict[str, Any]:
    """The registry's (``log="registry"``) or the prompt labels' (``"prompts"``) state as the
    project's repository on the server holds its log: every event checked against its id and
    linked to its parents as it is read (``problem``: what did not check), then folded, each
    refused event named (``refused``)."""
    from tether.events.gitmirror import read_from_git

    root = hub.mirrors.path(project)
    try:
        events = read_from_git(root, log) if root.exists() else []
    except TetherError as exc:
        return {"events": [], "state": None, "refused": [], "problem": str(exc)}
    if log == "registry":
        from tether.registry.fold import fold
        from tether.registry.state import State

        state: Any = fold(State(), events)
        refused = [str(r) for r in state.refused]
    else:
        from tether.prompts.label_log import fold as fold_prompts

        state = fold_prompts(events)
        refused = [f"{r.seq} {r.kind} by {r.actor}: {r.why}" for r in state.refusals]
    return {"events": events, "state": state, "refused": refused, "problem": None}


def prompt_versions(hub: Hub, project: str) -> dict[str, list[str]]:
    """Each prompt's registered versions (its ``NAME@vX.Y.Z`` tags in the project's
    repository on the server), oldest first."""
    import re
    import subprocess

    root = hub.mirrors.path(project)
    if not root.exists():
        return {}
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:strip=2)", "refs/tags/*@v*"],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    found: dict[str, list[tuple[int, ...]]] = {}
    for tag in out.split():
        m = re.fullmatch(r"(?P<name>[^@#]+)@v(?P<v>\d+\.\d+\.\d+)", tag)
        if m:
            found.setdefault(m["name"], []).append(tuple(int(x) for x in m["v"].split(".")))
    return {
        name: [f"v{'.'.join(map(str, v))}" for v in sorted(vs)]
        for name, vs in sorted(found.items())
    }


class Views:
    """What the web UI reads of one server's projects (each method: the function above)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def run_details(self, project: str, run_id: str) -> dict[str, Any]:
        return run_details(self.hub, project, run_id)

    def metric_points(self, project: str, run_id: str, key: str, **kw: Any) -> dict[str, Any]:
        return metric_points(self.hub, project, run_id, key, **kw)

    def diff_runs(self, project: str, a: str, b: str) -> Any:
        return diff_runs(self.hub, project, a, b)

    def artifacts(self, project: str, record: dict[str, Any]) -> list[Artifact]:
        return artifacts(self.hub, project, record)

    def artifact(self, project: str, run_id: str, name: str) -> tuple[Artifact, bytes]:
        return artifact(self.hub, project, run_id, name)

    def lineage(self, project: str, **kw: Any) -> dict[str, Any]:
        return lineage(self.hub, project, **kw)

    def governance(self, project: str, log: str) -> dict[str, Any]:
        return governance(self.hub, project, log)

    def prompt_versions(self, project: str) -> dict[str, list[str]]:
        return prompt_versions(self.hub, project)
