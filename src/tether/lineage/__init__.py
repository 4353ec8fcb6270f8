"""Lineage: what a result came from and what was built from it, and standard exports.

The entry points load lazily (``trace`` pulls in the run index only when it is used):

- :func:`trace` walks the runs index from a path, object id or run to a :class:`LineageGraph`;
  :func:`render` draws it as a tree, Mermaid, Graphviz DOT or JSON.
- :func:`openlineage_events` gives OpenLineage run events, :func:`to_ndjson` writes them as JSON
  lines and :func:`send_events` POSTs them to an OpenLineage endpoint.
- :func:`prov_document` gives a W3C PROV-JSON document; :func:`prov_json` writes it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "FORMATS",
    "LineageGraph",
    "Target",
    "openlineage_events",
    "prov_document",
    "prov_json",
    "render",
    "resolve_target",
    "send_events",
    "to_ndjson",
    "trace",
]

_LAZY = {
    "FORMATS": ("tether.lineage.formats", "FORMATS"),
    "LineageGraph": ("tether.lineage.graph", "LineageGraph"),
    "Target": ("tether.lineage.target", "Target"),
    "openlineage_events": ("tether.lineage.openlineage", "openlineage_events"),
    "prov_document": ("tether.lineage.provjson", "prov_document"),
    "prov_json": ("tether.lineage.provjson", "to_json"),
    "render": ("tether.lineage.formats", "render"),
    "resolve_target": ("tether.lineage.target", "resolve_target"),
    "send_events": ("tether.lineage.openlineage", "send_events"),
    "to_ndjson": ("tether.lineage.openlineage", "to_ndjson"),
    "trace": ("tether.lineage.walk", "trace"),
}

if TYPE_CHECKING:
    from tether.lineage.formats import FORMATS, render
    from tether.lineage.graph import LineageGraph
    from tether.lineage.openlineage import openlineage_events, send_events, to_ndjson
    from tether.lineage.provjson import prov_document
    from tether.lineage.provjson import to_json as prov_json
    from tether.lineage.target import Target, resolve_target
    from tether.lineage.walk import trace


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'tether.lineage' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value
