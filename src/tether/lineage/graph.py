"""The lineage graph: what a result came from (upstream) or what was built from it (downstream).

Nodes are runs, objects (data by content id), code states (a commit, plus the uncommitted diff
when there was one), environments and a run's parameters. Edges read as sentences, from the
later thing to the earlier one, as in W3C PROV::

    object  --generated_by-->  run        the run wrote the object
    run     --used-->          object     the run read the object
    run     --ran_code-->      commit     the code it ran (commit + diff)
    run     --ran_in-->        env        the environment it ran in
    run     --with_params-->   params     its parameters and seeds
    run     --part_of-->       run        a pipeline stage inside its pipeline run
    object  --contained_in-->  object     a file inside a folder (the folder's manifest)

A graph is a value (frozen dataclasses); :class:`GraphBuilder` is the mutable side used while
walking, and adds each node and edge once, so shared nodes and cycles never repeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
KINDS = ("run", "object", "commit", "env", "params")
RELATIONS = ("generated_by", "used", "ran_code", "ran_in", "with_params", "part_of", "contained_in")
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Node:
    key: str  # unique in the graph: "run:<id>", "object:<id>", "commit:<sha>[+<diff>]", ...
    kind: str  # one of KINDS
    label: str  # one line, for people
    attrs: tuple[tuple[str, str], ...] = ()  # details, sorted by name
    paths: tuple[str, ...] = ()  # objects: every path it was logged under

    def attr(self, name: str, default: str = "") -> str:
        return dict(self.attrs).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind, "label": self.label}
        out["attrs"] = dict(self.attrs)
        if self.paths:
            out["paths"] = list(self.paths)
        return out


@dataclass(frozen=True)
class Edge:
    source: str
    relation: str  # one of RELATIONS
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "relation": self.relation, "target": self.target}


@dataclass(frozen=True)
class LineageGraph:
    root: str  # the key of the node asked about
    direction: str  # UP or DOWN
    depth: int | None  # run levels walked at most (None: all)
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    truncated: bool = False  # the depth stopped the walk while there was more to see
    # the target was a path whose current content no run knows: the ids runs logged it under
    other_versions: tuple[str, ...] = ()
    # lookups built on first use (the graph itself never changes)
    _by_key: dict[str, Node] = field(default_factory=dict, init=False, repr=False, compare=False)
    _out: dict[str, list[Edge]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _in: dict[str, list[Edge]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def node(self, key: str) -> Node:
        if not self._by_key:
            self._by_key.update((n.key, n) for n in self.nodes)
        return self._by_key[key]

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def edges_from(self, key: str) -> list[Edge]:
        self._index_edges()
        return self._out.get(key, [])

    def edges_to(self, key: str) -> list[Edge]:
        self._index_edges()
        return self._in.get(key, [])

    def _index_edges(self) -> None:
        if self.edges and not self._out:
            for edge in self.edges:
                self._out.setdefault(edge.source, []).append(edge)
                self._in.setdefault(edge.target, []).append(edge)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tether": "lineage",
            "format": FORMAT,
            "root": self.root,
            "direction": self.direction,
            "depth": self.depth,
            "truncated": self.truncated,
            "other_versions": list(self.other_versions),
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }


class GraphBuilder:
    """Collects nodes and edges once each, in the order first seen."""

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[str, str, dict[str, str], list[str]]] = {}
        self._edges: dict[Edge, None] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._nodes

    def add_node(
        self,
        key: str,
        kind: str,
        label: str,
        attrs: Mapping[str, str | None] | None = None,
        paths: Iterable[str] = (),
    ) -> bool:
        """Add a node (or more paths to a known one); True when it is new."""
        known = self._nodes.get(key)
        if known is None:
            clean = {k: v for k, v in (attrs or {}).items() if v is not None}
            self._nodes[key] = (kind, label, clean, [])
        for path in paths:
            if path not in self._nodes[key][3]:
                self._nodes[key][3].append(path)
        return known is None

    @property
    def edge_count(self) -> int:
        return len(self._edges)

    def add_edge(self, source: str, relation: str, target: str) -> None:
        self._edges.setdefault(Edge(source, relation, target), None)

    def build(
        self,
        root: str,
        direction: str,
        depth: int | None,
        *,
        truncated: bool = False,
        other_versions: Iterable[str] = (),
    ) -> LineageGraph:
        nodes = tuple(
            Node(key, kind, _label(kind, label, paths), tuple(sorted(attrs.items())), tuple(paths))
            for key, (kind, label, attrs, paths) in self._nodes.items()
        )
        return LineageGraph(
            root, direction, depth, nodes, tuple(self._edges), truncated, tuple(other_versions)
        )


def _label(kind: str, label: str, paths: list[str]) -> str:
    """An object is shown by the path it is best known under, then its short id."""
    if kind == "object" and paths:
        return f"{paths[0]} {label}"
    return label


def object_key(oid: str) -> str:
    return f"object:{oid}"


def run_key(run_id: str) -> str:
    return f"run:{run_id}"


def short_id(oid: str) -> str:
    """``blake3:1a2b3c4d5e6f`` : enough to tell objects apart on screen."""
    algo, _, hexdigits = oid.partition(":")
    return f"{algo}:{hexdigits[:12]}" if hexdigits else oid[:19]
