"""Reachability: which objects a set of roots keeps alive.

A root may be a blob, a folder manifest (its entries are leaves) or a record: a JSON object that
starts with ``{"tether":"record"`` and lists the ids it depends on under ``"links"``. Later layers
(runs, registry) write records; gc and push follow them without knowing what they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from tether.objects.store import ObjectStore
from tether.objects.tree import HEADER as TREE_HEADER
from tether.objects.tree import Tree

RECORD_HEADER = b'{"tether":"record"'


@dataclass
class Reachable:
    ids: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)  # trees and records among ids
    missing: set[str] = field(default_factory=set)
    # who needs a missing object: id -> the root that led to it
    needed_by: dict[str, str] = field(default_factory=dict)


def children(data: bytes, oid: str) -> list[str]:
    head = data[:32]
    if head.startswith(TREE_HEADER):
        return sorted(Tree.from_bytes(data, oid).blob_ids())
    if head.startswith(RECORD_HEADER):
        links = json.loads(data).get("links", [])
        return [str(x) for x in links]
    return []


def reachable(store: ObjectStore, roots: Iterable[tuple[str, str]]) -> Reachable:
    """Walk from ``(root label, id)`` pairs; every object met is kept, every absent one noted."""
    out = Reachable()
    stack = list(roots)
    while stack:
        label, oid = stack.pop()
        if oid in out.ids or oid in out.missing:
            continue
        path = store.path(oid)
        try:
            with open(path, "rb") as f:
                head = f.read(32)
                is_container = head.startswith((TREE_HEADER, RECORD_HEADER))
                data = head + f.read() if is_container else b""
        except FileNotFoundError:
            out.missing.add(oid)
            out.needed_by.setdefault(oid, label)
            continue
        out.ids.add(oid)
        if not is_container:
            continue
        out.containers.add(oid)
        leaves = data.startswith(TREE_HEADER)  # tree entries are plain files; record links are not
        for child in children(data, oid):
            if not leaves:
                stack.append((label, child))
            elif child in out.ids or child in out.missing:
                continue
            elif store.path(child).exists():
                out.ids.add(child)
            else:
                out.missing.add(child)
                out.needed_by.setdefault(child, label)
    return out
