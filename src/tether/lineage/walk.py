"""Walking lineage through the run index: :func:`trace`.

Upstream, each step asks which runs *wrote* the objects at the frontier (an indexed query on the
``data`` table), adds those runs with their inputs, code, environment and parameters, and makes
their inputs the next frontier. Downstream, each step asks which runs *read* the frontier and
makes their outputs the next one. A pipeline run takes its stages (runs whose ``parent`` it is)
along. Every object and run is looked at once, so shared inputs and cycles end the walk.

A file logged on its own and a folder logged whole are tied through the folder's manifest: the
file is ``contained_in`` the folder when the manifest lists it with the same id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tether.errors import MissingObjectError, RunError, UsageError
from tether.lineage import lookup
from tether.lineage.graph import DOWN, UP, GraphBuilder, LineageGraph, object_key, run_key
from tether.lineage.lookup import INPUT, OUTPUT, DataRow
from tether.lineage.nodes import add_context, add_object, add_run
from tether.lineage.target import RUN, Target, id_inside, resolve_target
from tether.objects.tree import HEADER, Tree
from tether.runs import catalog, lifecycle
from tether.workspace.repo import Workspace


def trace(
    ws: Workspace,
    target: str | Target,
    *,
    direction: str = UP,
    depth: int | None = None,
) -> LineageGraph:
    """The lineage of ``target`` (a path, object id or run; see :func:`resolve_target`).

    ``depth`` bounds how many levels of runs are walked (None: until nothing more is known)."""
    if direction not in (UP, DOWN):
        raise UsageError(f"direction is {UP!r} or {DOWN!r}, not {direction!r}")
    if depth is not None and depth < 1:
        raise UsageError("depth counts levels of runs: give 1 or more")
    lifecycle.recover(ws)  # a run whose process died is sealed `killed` before it is shown
    if isinstance(target, str):
        target = resolve_target(ws, target)
    walk = _Walk(ws, direction)
    if target.kind == RUN:
        root = run_key(target.id)
        frontier, hops = walk.expand(target.id), 1
    else:
        root = add_object(walk.graph, target.id, target.path)
        walk.note_path(target.id, target.path)
        frontier, hops = {target.id}, 0
    while frontier and (depth is None or hops < depth):
        frontier = walk.step(frontier)
        hops += 1
    truncated = bool(frontier) and walk.has_more(frontier)
    others = walk.other_versions(target) if not walk.graph.edge_count else []
    return walk.graph.build(root, direction, depth, truncated=truncated, other_versions=others)


class _Walk:
    def __init__(self, ws: Workspace, direction: str) -> None:
        self.ws = ws
        self.up = direction == UP
        self.index = lookup.index_for(ws)
        self.graph = GraphBuilder()
        self.records: dict[str, dict[str, Any]] = {}
        self.expanded: set[str] = set()
        self.looked: set[str] = set()  # objects whose runs were asked for
        self.paths: dict[str, set[str]] = {}  # object id -> the paths runs logged it under
        self.trees: dict[str, Tree | None] = {}

    def record(self, run_id: str) -> dict[str, Any]:
        if run_id not in self.records:
            try:
                self.records[run_id] = catalog.load(self.ws, run_id)
            except RunError:  # a teammate's run the server knows: fetched, then read here
                if catalog.fetch_from_server(self.ws, run_id) is None:
                    raise
                self.records[run_id] = catalog.load(self.ws, run_id)
        return self.records[run_id]

    def note_path(self, oid: str, path: str | None) -> None:
        if path:
            self.paths.setdefault(oid, set()).add(path)

    # -- one level ---------------------------------------------------------------------------
    def step(self, frontier: set[str]) -> set[str]:
        """Runs tied to the frontier's objects; the objects they bring that are still unasked."""
        self.looked |= frontier
        role = OUTPUT if self.up else INPUT
        rows = lookup.runs_with_objects(self.index, role, frontier)
        rows += self._up_folders(frontier) if self.up else self._down_folders(frontier)
        found: set[str] = set()
        for row in rows:
            found |= self.expand(row.run_id)
            self._link(row)
        return found - self.looked

    def has_more(self, frontier: set[str]) -> bool:
        role = OUTPUT if self.up else INPUT
        return bool(lookup.runs_with_objects(self.index, role, frontier))

    def _link(self, row: DataRow) -> None:
        add_object(self.graph, row.object, row.path)
        self.note_path(row.object, row.path)
        if row.role == OUTPUT:
            self.graph.add_edge(object_key(row.object), "generated_by", run_key(row.run_id))
        else:
            self.graph.add_edge(run_key(row.run_id), "used", object_key(row.object))

    def expand(self, run_id: str) -> set[str]:
        """Add a run, its side of the data (inputs upstream, outputs downstream) and, when it is
        a pipeline run, its stages; the objects it brings."""
        if run_id in self.expanded:
            return set()
        self.expanded.add(run_id)
        try:
            record = self.record(run_id)
        except (RunError, MissingObjectError):
            self.graph.add_node(run_key(run_id), "run", f"run {run_id} [not here]", {"id": run_id})
            return set()  # indexed but its record is not fetched: shown, not walked through
        add_run(self.graph, record)
        self._add_parent(record)
        data = record.get("data") or {}
        side = data.get("inputs" if self.up else "outputs") or {}
        role = INPUT if self.up else OUTPUT
        for path, oid in side.items():
            self._link(DataRow(run_id, role, path, oid))
        if self.up:
            add_context(self.graph, self.ws, record)
        found = set(side.values())
        for _parent, child in lookup.children(self.index, [run_id]):
            found |= self.expand(child)
        return found

    def _add_parent(self, record: dict[str, Any]) -> None:
        """The pipeline run a stage belongs to (shown, not walked through)."""
        parent = record.get("parent")
        if not parent:
            return
        if run_key(parent) not in self.graph:
            try:
                parent_record = self.record(parent)
            except (RunError, MissingObjectError):
                self.graph.add_node(
                    run_key(parent), "run", f"run {parent} [not here]", {"id": parent}
                )
            else:
                add_run(self.graph, parent_record)
                self._add_parent(parent_record)
        self.graph.add_edge(run_key(record["id"]), "part_of", run_key(parent))

    # -- files inside folders ----------------------------------------------------------------
    def _tree(self, oid: str) -> Tree | None:
        """The folder manifest ``oid`` is, or None (a file, or not in the cache)."""
        if oid not in self.trees:
            try:
                head = self.ws.store.read_head(oid, len(HEADER))
                self.trees[oid] = self.ws.store.load_tree(oid) if head == HEADER else None
            except (MissingObjectError, FileNotFoundError, ValueError):
                self.trees[oid] = None
        return self.trees[oid]

    def _up_folders(self, frontier: Iterable[str]) -> list[DataRow]:
        """Outputs that are folders holding a frontier object (logged under a path inside)."""
        wanted = {
            folder: (oid, path)
            for oid in frontier
            for path in self.paths.get(oid, ())
            for folder in lookup.ancestors(path)
        }
        rows = []
        for row in lookup.runs_with_paths(self.index, OUTPUT, wanted):
            oid, path = wanted[row.path]
            tree = self._tree(row.object)
            if tree is not None and id_inside(tree, path[len(row.path) + 1 :]) == oid:
                add_object(self.graph, row.object, row.path)
                self.graph.add_edge(object_key(oid), "contained_in", object_key(row.object))
                rows.append(row)
        return rows

    def _down_folders(self, frontier: Iterable[str]) -> list[DataRow]:
        """Inputs logged under a path inside a frontier folder, with the id the folder holds."""
        rows = []
        for oid in frontier:
            tree = self._tree(oid) if oid in self.paths else None
            if tree is None:
                continue
            for folder in sorted(self.paths[oid]):
                for row in lookup.runs_under_folder(self.index, INPUT, folder):
                    if id_inside(tree, row.path[len(folder) + 1 :]) != row.object:
                        continue
                    add_object(self.graph, row.object, row.path)
                    self.graph.add_edge(object_key(row.object), "contained_in", object_key(oid))
                    rows.append(row)
        return rows

    def other_versions(self, target: Target) -> list[str]:
        """Other contents runs logged the target's path with (when this one is unknown)."""
        if target.kind == RUN or not target.path:
            return []
        rows = lookup.runs_with_paths(self.index, OUTPUT, [target.path])
        rows += lookup.runs_with_paths(self.index, INPUT, [target.path])
        return sorted({r.object for r in rows if r.object != target.id})
