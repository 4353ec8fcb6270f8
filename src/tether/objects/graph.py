"""Reachability: which objects a set of roots keeps alive.

A root may be a blob, a folder manifest (its entries are leaves) or a record: a JSON object that
starts with ``{"tether":"record"`` and lists the ids it depends on under ``"links"``. Later layers
(runs, registry) write records; gc and push follow them without knowing what they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tether._documents import Fields, Leaf, ListOf, loads_json
from tether.errors import FormatError
from tether.hashing import is_object_id
from tether.objects.store import ObjectStore
from tether.objects.tree import HEADER as TREE_HEADER
from tether.objects.tree import Tree

RECORD_HEADER = b'{"tether":"record"'
CONTAINER_HEADERS = (TREE_HEADER, RECORD_HEADER)  # objects that name others


@dataclass
class Reachable:
    ids: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)  # trees and records among ids
    missing: set[str] = field(default_factory=set)
    missing_files: set[str] = field(default_factory=set)  # among missing: a folder's entries
    # who needs a missing object: id -> the root that led to it
    needed_by: dict[str, str] = field(default_factory=dict)


def children(data: bytes, oid: str) -> list[str]:
    head = data[:32]
    if head.startswith(TREE_HEADER):
        return sorted(Tree.from_bytes(data, oid).blob_ids())
    if head.startswith(RECORD_HEADER):
        doc = loads_json(data, f"record {oid}")
        if problem := _LINKS.problem(doc, ""):
            raise FormatError(
                f"record {oid} is corrupt ({problem}): run `tether fsck`, and fetch it again "
                "from a clone that has it whole"
            )
        return list(doc.get("links", []))
    return []


_LINKS = Fields(
    {"links": ListOf(Leaf(lambda v: type(v) is str and is_object_id(v), "an object id"))}
)


def reachable(store: ObjectStore, roots: Iterable[tuple[str, str]]) -> Reachable:
    """Walk from ``(root label, id)`` pairs; every object met is kept, every absent one noted."""
    out = Reachable()
    stack = list(roots)
    while stack:
        label, oid = stack.pop()
        if oid in out.ids or oid in out.missing:
            continue
        if not store.has(oid):
            out.missing.add(oid)
            out.needed_by.setdefault(oid, label)
            continue
        out.ids.add(oid)
        if not store.read_head(oid, len(RECORD_HEADER)).startswith(CONTAINER_HEADERS):
            continue
        data = store.read_bytes(oid)
        out.containers.add(oid)
        kids = children(data, oid)
        if not data.startswith(TREE_HEADER):  # record links may be trees or records: walk them
            stack.extend((label, child) for child in kids)
            continue
        absent = store.missing(kids)  # tree entries are plain files: one bulk check
        out.ids.update(k for k in kids if k not in absent)
        for child in absent:
            out.missing.add(child)
            out.missing_files.add(child)
            out.needed_by.setdefault(child, label)
    return out
