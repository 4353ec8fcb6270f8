"""Sealed records: the run record, its amendments and tombstones, as immutable objects.

Every record is JSON starting ``{"tether":"record"`` with the ids it depends on under ``links``,
so gc and push follow it without knowing what it is (see ``objects/graph.py``). A sealed run
never changes: tags and notes added later are *amendment* records, a deletion is a *tombstone*.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from tether.errors import FormatError
from tether.hashing import is_object_id
from tether.meta.store import IndexedRun, MetricSummary
from tether.runs.journal import finite_or_text

FORMAT = 1
KINDS = ("run", "amendment", "tombstone", "runcache")


def dump_record(kind: str, body: Mapping[str, Any], links: Iterable[str | None] = ()) -> bytes:
    """The record's bytes. A run's ``links`` always hold every object its body names (see
    :func:`run_links`), whatever the caller passed: what a run read stays a gc root and is
    pushed with it."""
    named = {i for i in links if i}
    if kind == "run":
        named |= run_links(body)
    doc = {"kind": kind, "format": FORMAT, "links": sorted(named), **body}
    rest = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ('{"tether":"record",' + rest[1:]).encode()


def run_links(body: Mapping[str, Any]) -> set[str]:
    """Every object a run's body names: its environment, code diff, metric history, log,
    artifacts, notebook, and its data: inputs, outputs and the tracked pointers at its start
    and end (what it could read and what it left). A value is an object id or a mapping (or
    list) holding them; params, tags and notes are the user's text and are never followed."""
    found: set[str] = set()
    for key in ("env", "series", "log"):
        _collect(body.get(key), found)
    _collect((body.get("code") or {}).get("diff"), found)
    _collect(body.get("artifacts"), found)
    _collect(body.get("notebook"), found)
    data = body.get("data") or {}
    _collect(data.get("inputs"), found)
    _collect(data.get("outputs"), found)
    # a tracked path missing at the start, or edited (its real bytes are an input), was not read
    # as its pointer names it: that id is no part of the run (and may exist nowhere)
    start = dict(data.get("pointers_start") or {})
    unread = {start.get(p) for p in [*(data.get("missing") or []), *(data.get("modified") or [])]}
    pointers: set[str] = set()
    _collect(start, pointers)
    _collect(data.get("pointers_end"), pointers)
    return found | (pointers - unread)


def _collect(value: Any, found: set[str]) -> None:
    """Object ids in ``value``: itself, the values of a mapping (or its ``id``), a list's items."""
    if isinstance(value, str):
        if is_object_id(value):
            found.add(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)


def load_record(data: bytes, oid: str = "?") -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"record {oid} is not valid JSON: run `tether fsck`") from exc
    if not isinstance(doc, dict) or doc.get("tether") != "record" or doc.get("kind") not in KINDS:
        raise FormatError(f"object {oid} is not a Tether record")
    if doc.get("format") != FORMAT:
        raise FormatError(
            f"record {oid} has format {doc.get('format')}; this Tether reads format {FORMAT}: "
            "upgrade Tether"
        )
    return doc


def number(value: float | str | None) -> float:
    """The inverse of :func:`finite_or_text`."""
    if value is None:
        return math.nan
    return float(value.replace("Infinity", "inf")) if isinstance(value, str) else float(value)


def summarize(series: Mapping[str, list[tuple[int, float, float]]]) -> dict[str, dict[str, Any]]:
    """Per metric: last value (by time), min and max over the non-NaN values, step, count."""
    out = {}
    for key, points in series.items():
        values = [v for _s, _t, v in points if not math.isnan(v)]
        step, _ts, last = points[-1]
        out[key] = {
            "last": finite_or_text(last),
            "min": finite_or_text(min(values)) if values else "NaN",
            "max": finite_or_text(max(values)) if values else "NaN",
            "step": step,
            "count": len(points),
        }
    return out


def series_document(series: Mapping[str, list[tuple[int, float, float]]]) -> bytes:
    """The full metric history, column-wise, as one object."""
    cols = {
        key: {
            "step": [p[0] for p in points],
            "ts": [p[1] for p in points],
            "value": [finite_or_text(p[2]) for p in points],
        }
        for key, points in sorted(series.items())
    }
    return json.dumps(
        {"tether": "metrics", "format": 1, "series": cols}, separators=(",", ":")
    ).encode()


def load_series(data: bytes) -> dict[str, list[tuple[int, float, float]]]:
    doc = json.loads(data)
    if doc.get("tether") != "metrics" or doc.get("format") != 1:
        raise FormatError("not a Tether metric history (or of a format this Tether cannot read)")
    return {
        key: [(s, t, number(v)) for s, t, v in zip(c["step"], c["ts"], c["value"], strict=True)]
        for key, c in doc["series"].items()
    }


def to_indexed(
    record: Mapping[str, Any],
    record_id: str | None,
    amendments: Iterable[Mapping[str, Any]] = (),
    *,
    deleted: bool = False,
) -> IndexedRun:
    """The index's view of a run: its record with its amendments applied, in time order."""
    tags = dict(record.get("tags", {}))
    for amend in sorted(amendments, key=lambda a: a.get("time", 0)):
        tags.update(amend.get("tags", {}))
        for key in amend.get("untag", []):
            tags.pop(key, None)
    code = record.get("code") or {}
    data = record.get("data") or {}
    metrics = {
        k: MetricSummary(
            number(m["last"]), number(m["min"]), number(m["max"]), m["step"], m["count"]
        )
        for k, m in (record.get("metrics") or {}).items()
    }
    return IndexedRun(
        id=record["id"],
        name=record["name"],
        experiment=record["experiment"],
        status=record["status"],
        started=record["started"],
        ended=record.get("ended"),
        user=record.get("user", ""),
        host=record.get("host", ""),
        command=" ".join(record.get("command") or []),
        exit_code=record.get("exit_code"),
        commit=code.get("commit"),
        branch=code.get("branch"),
        dirty=code.get("dirty"),
        parent=record.get("parent"),
        record=record_id,
        deleted=deleted,
        params=dict(record.get("params", {})),
        metrics=metrics,
        tags=tags,
        inputs=dict(data.get("inputs", {})),
        outputs=dict(data.get("outputs", {})),
    )
