"""What the web UI reads of a project on the server: a run's record and what its pillars
link, its artifacts, a metric's points for a chart (:mod:`tether.team.series`: raw or M4, NaN
and infinities as marks), two runs' difference, a lineage graph, and the registry's and prompt
labels' logs as the project's repository holds them. Nothing here writes but the series cache.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import FormatError, MissingOnServerError, MissingRunError, TetherError

if TYPE_CHECKING:
    from tether.team.hub import Hub

DIFF_SHOWN = 256 * 1024
LOG_SHOWN = 64 * 1024  # the end of a run's output log shown on its page


def run_record(hub: Hub, project: str, run_id: str) -> dict[str, Any]:
    """The sealed record of a run the server accepted (a live run has none yet: an error)."""
    from tether._documents import loads_json

    state = hub.run_state(project, run_id)
    oid = state.get("record")
    if not oid:
        raise MissingRunError(f"run {run_id} is still running: its record is sealed as it ends")
    with _records_lock:
        if (project, oid) in _records:
            _records.move_to_end((project, oid))
            return _records[(project, oid)]
    doc = loads_json(hub.blobs.read_bytes(project, oid), f"record of {run_id}")
    if not isinstance(doc, dict):
        raise FormatError(f"the record of run {run_id} is not a JSON object")
    with _records_lock:  # a record never changes: its id is its content
        _records[(project, oid)] = doc
        while len(_records) > RECORDS_KEPT:
            _records.popitem(last=False)
    return doc


RECORDS_KEPT = 2000
_records: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_records_lock = threading.Lock()
_prebuilder: Any = None


def prebuild(hub: Hub, project: str, record: dict[str, Any]) -> None:
    """Build the chart columns of a run's metric history in the background (a server that
    just accepted the run), so its first chart does not parse the history."""
    global _prebuilder
    from concurrent.futures import ThreadPoolExecutor

    from tether.team.series import ParseSeries

    oid, metrics = record.get("series"), record.get("metrics") or {}
    if not isinstance(oid, str) or not metrics:
        return
    if _prebuilder is None:
        _prebuilder = ThreadPoolExecutor(1, thread_name_prefix="tether-series")
    parse = ParseSeries(lambda: hub.blobs.read_bytes(project, oid), oid)

    def build() -> None:
        try:
            _columns(hub).get(oid, next(iter(metrics)), parse)
        except (OSError, TetherError):
            pass  # a cache only: the first chart builds it instead, or says what is wrong

    _prebuilder.submit(build)


def run_details(hub: Hub, project: str, run_id: str) -> dict[str, Any]:
    """A run's record with what its pillars link: the uncommitted diff (as text, the first
    :data:`DIFF_SHOWN` bytes), the environment document, the end of its output log and the
    tags and notes added since. A linked object the server lacks is named, not an error: the
    page still shows the rest."""
    from tether._documents import loads_json

    record = run_record(hub, project, run_id)
    out: dict[str, Any] = {
        "record": record,
        "diff": None,
        "env": None,
        "log": None,
        "missing": [],
        "history": amendments(hub, project, run_id),
    }
    code, log = record.get("code") or {}, record.get("log")
    for oid, key in ((code.get("diff"), "diff"), (record.get("env"), "env"), (log, "log")):
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
        elif key == "log":  # its end is what a reader wants: where it stopped, and why
            out["log"] = data[-LOG_SHOWN:].decode("utf-8", "replace")
            out["log_cut"] = len(data) > LOG_SHOWN
        else:
            doc = loads_json(data, f"environment of {run_id}")
            out["env"] = doc if isinstance(doc, dict) else None
    return out


def amendments(hub: Hub, project: str, run_id: str) -> list[dict[str, Any]]:
    """The tags and notes added to a run after it was sealed, oldest first, each with who
    added it (the account that handed it to the server, and the amendment's own claim) and
    when. One the server cannot read is listed as unreadable, not dropped."""
    from tether._documents import loads_json

    state = hub.run_state(project, run_id)
    by = state.get("uploaded_by") or {}
    out = []
    for oid in state.get("amendments") or []:
        try:
            doc = loads_json(hub.blobs.read_bytes(project, oid), f"amendment of {run_id}")
        except (FileNotFoundError, TetherError) as exc:
            out.append({"id": oid, "time": None, "problem": str(exc)})
            continue
        if not isinstance(doc, dict):
            doc = {}
        out.append(
            {
                "id": oid,
                "time": doc.get("time"),
                "user": doc.get("user"),
                "account": by.get(oid),
                "tags": doc.get("tags") or {},
                "untag": doc.get("untag") or [],
                "note": doc.get("note"),
            }
        )
    return sorted(out, key=lambda a: a["time"] or 0.0)


def run_log(hub: Hub, project: str, run_id: str) -> bytes:
    """A run's whole output log."""
    oid = run_record(hub, project, run_id).get("log")
    if not isinstance(oid, str):
        raise MissingOnServerError(f"run {run_id} recorded no output log")
    return hub.blobs.read_bytes(project, oid)


def environment_file(hub: Hub, project: str, run_id: str, fmt: str) -> str:
    """A run's environment as what rebuilds it: ``requirements``, ``conda`` or ``dockerfile``
    text (the same as `tether env export`)."""
    from tether._documents import loads_json
    from tether.capture.export import export_environment

    oid = run_record(hub, project, run_id).get("env")
    if not isinstance(oid, str):
        raise MissingOnServerError(f"run {run_id} recorded no environment")
    doc = loads_json(hub.blobs.read_bytes(project, oid), f"environment of {run_id}")
    if not isinstance(doc, dict):
        raise FormatError(f"the environment of run {run_id} is not a JSON object")
    return export_environment(doc, fmt)


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
    wide: raw when few enough, else M4-reduced (``reduced``), with the total in range
    (:mod:`tether.team.series`)."""
    from tether.team.series import ParseSeries

    start = start if start is not None and math.isfinite(start) else None
    end = end if end is not None and math.isfinite(end) else None
    record = run_record(hub, project, run_id)
    oid = record.get("series")
    col = None
    if isinstance(oid, str):
        parse = ParseSeries(lambda: hub.blobs.read_bytes(project, oid), oid)
        col = _columns(hub).get(oid, key, parse)
    if col is None:
        raise MissingOnServerError(f"run {run_id} logged no metric {key!r}")
    lo, hi = col.span(start, end)
    steps, values, reduced = col.points(lo, hi, max(1, min(width, 10_000)))
    marks = [
        {"step": s, "value": m}
        for s, m in col.marks
        if (start is None or s >= start) and (end is None or s <= end)
    ]
    return {
        "key": key,
        "total": hi - lo,
        "reduced": reduced,
        "steps": steps,
        "values": values,
        "marks": marks,
    }


_kept: dict[int, Any] = {}


def _columns(hub: Hub) -> Any:
    """The hub's series columns (one per hub), cached beside its git mirrors."""
    from tether.team.series import Columns

    found = _kept.get(id(hub))
    if found is None:
        found = _kept[id(hub)] = Columns(hub.mirrors.folder / ".series")
    return found


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
        raise MissingOnServerError(f"run {run_id} logged no artifact {name!r}")
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


class Views:
    """What the web UI reads of one server's projects (each method: the function above)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def run_details(self, project: str, run_id: str) -> dict[str, Any]:
        return run_details(self.hub, project, run_id)

    def run_log(self, project: str, run_id: str) -> bytes:
        return run_log(self.hub, project, run_id)

    def environment_file(self, project: str, run_id: str, fmt: str) -> str:
        return environment_file(self.hub, project, run_id, fmt)

    def prebuild(self, project: str, record: dict[str, Any]) -> None:
        prebuild(self.hub, project, record)

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

    def releases(self, project: str, state: Any) -> dict[str, tuple[str, str]]:
        from tether.team.releases import statuses

        return statuses(self.hub, project, state)

    def prompt_evals(self, project: str, name: str) -> list[dict[str, Any]]:
        from tether.team.evals import prompt_evals

        return prompt_evals(self.hub, project, name)

    def paired(self, project: str, name: str, a: str, b: str) -> Any:
        from tether.team.evals import paired

        return paired(self.hub, project, name, a, b)

    def governance(self, project: str, log: str) -> dict[str, Any]:
        from tether.team import repo_views

        return repo_views.governance(self.hub, project, log)

    def prompt_versions(self, project: str) -> dict[str, list[str]]:
        from tether.team import repo_views

        return repo_views.prompt_versions(self.hub, project)

    def data_page(self, project: str, rev: str | None, against: str | None) -> dict[str, Any]:
        from tether.team import repo_views

        return repo_views.data_page(self.hub, project, rev, against)

    def prompt_diff(self, project: str, name: str, a: str, b: str) -> str:
        from tether.team import repo_views

        return repo_views.prompt_diff(self.hub, project, name, a, b)
