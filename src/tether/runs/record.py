"""Sealed records: the run record, its amendments and tombstones, as immutable objects.

Every record is JSON starting ``{"tether":"record"`` with the ids it depends on under ``links``,
so gc and push follow it without knowing what it is (see ``objects/graph.py``). A sealed run
never changes: tags and notes added later are *amendment* records, a deletion is a *tombstone*.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tether._documents import (
    BOOL,
    INT,
    MAX_DEPTH,
    NUMBER,
    TEXT,
    TIME,
    Fields,
    Leaf,
    ListOf,
    MapOf,
    Maybe,
    brief,
    loads_json,
)
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
    """A sealed record, checked whole against its kind's shape: what reads it (the index, gc,
    lineage, reproduce) can trust every field it names. A record's paths are checked here for
    their shape only (text); where they may be written is the writer's check."""
    doc = loads_json(data, f"record {oid}", max_depth=MAX_DEPTH)
    if not isinstance(doc, dict) or doc.get("tether") != "record" or doc.get("kind") not in KINDS:
        raise FormatError(f"object {oid} is not a Tether record")
    if doc.get("format") != FORMAT:
        raise FormatError(
            f"record {oid} has format {brief(doc.get('format'))}; this Tether reads format "
            f"{FORMAT}: upgrade Tether"
        )
    if problem := _SHAPES[doc["kind"]].problem(doc, ""):
        raise FormatError(
            f"{doc['kind']} record {oid} is malformed ({problem}): it was not written by "
            "Tether; run `tether fsck`, and fetch it again from a clone that has it whole"
        )
    return doc


_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")
RUN_ID = Leaf(lambda v: type(v) is str and bool(_RUN_ID.fullmatch(v)), "a run id")
OBJECT_ID = Leaf(lambda v: type(v) is str and is_object_id(v), "an object id (blake3:<64 hex>)")
_IDS = MapOf(OBJECT_ID)  # path or name -> object id
_TEXTS = ListOf(TEXT)
_METRIC = Leaf(
    lambda v: NUMBER.test(v) or v in ("NaN", "Infinity", "-Infinity"),
    "a finite number, 'NaN', 'Infinity' or '-Infinity'",
)
_CODE = Fields(
    {
        "commit": Maybe(TEXT),
        "branch": Maybe(TEXT),
        "remote": Maybe(TEXT),
        "dirty": Maybe(BOOL),
        "changed": _TEXTS,
        "diff": Maybe(OBJECT_ID),
        "entry_point": Maybe(TEXT),
        "skipped": MapOf(Fields({"size": Maybe(INT), "id": Maybe(OBJECT_ID)})),
        "submodules": ListOf(
            Fields(
                {
                    "path": TEXT,
                    "commit": Maybe(TEXT),
                    "present": Maybe(BOOL),
                    "dirty": Maybe(BOOL),
                    "diff": Maybe(OBJECT_ID),
                    "nested": Maybe(BOOL),
                },
                required=("path",),
            )
        ),
    }
)
_DATA = Fields(
    {
        "inputs": _IDS,
        "outputs": _IDS,
        "modified": _TEXTS,
        "missing": _TEXTS,
        "pointers_start": _IDS,
        "pointers_end": _IDS,
    }
)
_RECORD = {"links": ListOf(OBJECT_ID)}
_SHAPES = {
    "run": Fields(
        {
            **_RECORD,
            "id": RUN_ID,
            "name": TEXT,
            "experiment": TEXT,
            "status": TEXT,
            "started": TIME,
            "ended": Maybe(TIME),
            "user": TEXT,
            "email": Maybe(TEXT),  # git's, when set (older records have none)
            "host": TEXT,
            "command": _TEXTS,
            "exit_code": Maybe(INT),
            "parent": Maybe(RUN_ID),
            "code": Maybe(_CODE),
            "env": Maybe(OBJECT_ID),
            "data": Maybe(_DATA),
            "params": MapOf(TEXT),
            "seeds": ListOf(Leaf(lambda v: type(v) is int, "a whole number")),
            "tags": MapOf(TEXT),
            "notes": _TEXTS,
            "metrics": MapOf(
                Fields(
                    {"last": _METRIC, "min": _METRIC, "max": _METRIC, "step": INT, "count": INT},
                    required=("last", "min", "max", "step", "count"),
                )
            ),
            "series": Maybe(OBJECT_ID),
            "artifacts": _IDS,
            "log": Maybe(OBJECT_ID),
            "notebook": Maybe(
                Fields({"cells": Maybe(OBJECT_ID), "file": Maybe(OBJECT_ID), "path": TEXT})
            ),
            "cwd": Maybe(TEXT),
            "declared": Fields({"deps": _TEXTS, "outs": _TEXTS}),
        },
        required=("id", "name", "experiment", "status", "started"),
    ),
    "amendment": Fields(
        {
            **_RECORD,
            "run": RUN_ID,
            "time": TIME,
            "user": TEXT,
            "tags": MapOf(TEXT),
            "untag": _TEXTS,
            "note": Maybe(TEXT),
        },
        required=("run",),
    ),
    "tombstone": Fields(
        {**_RECORD, "run": RUN_ID, "time": TIME, "user": TEXT, "reason": TEXT}, required=("run",)
    ),
    "runcache": Fields(
        {
            **_RECORD,
            "stage": TEXT,
            "cmd": TEXT,
            "outs": _IDS,
            "metrics_files": _IDS,
            "run": Maybe(RUN_ID),
            "time": TIME,
        },
        required=("outs",),
    ),
}


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


def load_series(data: bytes, oid: str = "?") -> dict[str, list[tuple[int, float, float]]]:
    what = f"metric history {oid}"
    doc = loads_json(data, what)
    if not isinstance(doc, dict) or doc.get("tether") != "metrics" or doc.get("format") != 1:
        raise FormatError(
            f"{what} is not a Tether metric history (or of a format this Tether cannot read)"
        )
    problem = _SERIES.problem(doc, "") or next(
        (
            f"series[{brief(key)}] has columns of different lengths"
            for key, c in doc["series"].items()
            if not len(c["step"]) == len(c["ts"]) == len(c["value"])
        ),
        None,
    )
    if problem:
        raise FormatError(f"{what} is malformed ({problem}): run `tether fsck`")
    return {
        key: [(s, t, number(v)) for s, t, v in zip(c["step"], c["ts"], c["value"], strict=True)]
        for key, c in doc["series"].items()
    }


_SERIES = Fields(
    {
        "series": MapOf(
            Fields(
                {"step": ListOf(INT), "ts": ListOf(NUMBER), "value": ListOf(_METRIC)},
                required=("step", "ts", "value"),
            )
        )
    },
    required=("series",),
)


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
