"""An event's bytes: what is sealed, how it is read back, and what its signature covers.

An event is a record object, ``{"tether":"record","kind":"event",...}``. Format 1 holds one
parent, ``prev`` (null for event 0), also its only ``links`` entry. Format 2 is a ``log.merge``
event: it joins two histories and holds ``parents: [ours, theirs]`` (both its ``links``), at the
``seq`` one past its newer parent. Both formats are read; format 2 is written only for merges,
so a log that never merged reads as before in every Tether.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.errors import UsageError
from tether.hashing import is_object_id
from tether.redact import Redactor

FORMAT = 1
MERGE_FORMAT = 2
MERGE = "log.merge"
KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_COMMON = ("tether", "kind", "format", "links", "log", "seq", "event", "actor", "time", "body")
_FIELDS = {FORMAT: frozenset((*_COMMON, "prev")), MERGE_FORMAT: frozenset((*_COMMON, "parents"))}


@dataclass(frozen=True)
class Event:
    """One sealed event: ``id`` is the hash of its bytes, ``prev`` the id of the event before
    (a merge's first parent, ours), ``merged`` a merge event's second parent (theirs)."""

    id: str
    seq: int
    prev: str | None
    kind: str
    actor: str
    time: float
    body: dict[str, Any]
    merged: str | None = None

    @property
    def parents(self) -> tuple[str, ...]:
        """The events this one comes after: none for event 0, two for a merge."""
        if self.merged is not None and self.prev is not None:
            return (self.prev, self.merged)
        return () if self.prev is None else (self.prev,)


class Malformed(Exception):
    """Bytes that are not an event of this log; the message completes "the event …"."""


def signed_bytes(event: Event, log: str) -> bytes:
    """What an event's ``body["signed"]`` envelope signs: its log, parents (both of a merge),
    kind, actor, time and body (without the envelope), so a signature cannot be moved to
    another place in a log."""
    body = {k: v for k, v in event.body.items() if k != "signed"}
    return signed_doc(log, list(event.parents), event.kind, event.actor, event.time, body)


def signed_doc(
    log: str, parents: list[str], kind: str, actor: str, time: float, body: dict[str, Any]
) -> bytes:
    doc = {"log": log, "parents": parents, "event": kind, "actor": actor, "time": time}
    doc["body"] = body
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def dump(
    log: str, seq: int, parents: list[str], kind: str, actor: str, time: float,
    body: dict[str, Any],
) -> bytes:  # fmt: skip
    """The bytes of an event: format 1 for one parent or none, format 2 for a merge's two."""
    doc: dict[str, Any] = {
        "kind": "event",
        "format": MERGE_FORMAT if len(parents) == 2 else FORMAT,
        "links": list(parents),
        "log": log,
        "seq": seq,
        "event": kind,
        "actor": actor,
        "time": time,
        "body": body,
    }
    if len(parents) == 2:
        doc["parents"] = list(parents)
    else:
        doc["prev"] = parents[0] if parents else None
    rest = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ('{"tether":"record",' + rest[1:]).encode()  # the header gc and push look for


def parse(data: bytes, oid: str, log: str) -> Event:
    """The event ``data`` holds, checked on its own (its place in the log is the walk's to
    check); :class:`Malformed` says what is wrong."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise Malformed("is not JSON") from None
    if not isinstance(doc, dict) or doc.get("tether") != "record" or doc.get("kind") != "event":
        raise Malformed("is not an event record")
    version = doc.get("format")
    if version not in _FIELDS:
        raise Malformed(
            f"has format {version}; this Tether reads formats {FORMAT} and {MERGE_FORMAT}: "
            "upgrade Tether"
        )
    fields = _FIELDS[version]
    if doc.keys() != fields:
        raise Malformed(f"has the fields {sorted(doc)}, not {sorted(fields)}")
    seq, moment = doc["seq"], doc["time"]
    if type(seq) is not int or seq < 0:
        raise Malformed(f"has the seq {seq!r} (a number from 0 up)")
    parents = _parents(doc, seq) if version == MERGE_FORMAT else _prev(doc, seq)
    if doc["links"] != parents:
        raise Malformed("lists links other than its parents")
    if doc["log"] != log:
        raise Malformed(f"belongs to the event log {doc['log']!r}, not {log!r}")
    if not (isinstance(doc["event"], str) and KIND.match(doc["event"])):
        raise Malformed(f"has the kind {doc['event']!r}")
    if version == MERGE_FORMAT and doc["event"] != MERGE:
        raise Malformed(f"has two parents but is a {doc['event']}: only {MERGE} events merge")
    if not isinstance(doc["actor"], str) or not isinstance(doc["body"], dict):
        raise Malformed("has an actor that is not text or a body that is not an object")
    if type(moment) not in (int, float) or not math.isfinite(moment):
        raise Malformed(f"has the time {moment!r}")
    prev = parents[0] if parents else None
    merged = parents[1] if len(parents) == 2 else None
    return Event(oid, seq, prev, doc["event"], doc["actor"], float(moment), doc["body"], merged)


def _prev(doc: dict[str, Any], seq: int) -> list[str]:
    prev = doc["prev"]
    if prev is not None and not (isinstance(prev, str) and is_object_id(prev)):
        raise Malformed(f"has the prev {prev!r} (an event id or null)")
    if (seq == 0) != (prev is None):
        raise Malformed(f"is event {seq} with prev {prev}: only event 0 has no prev")
    return [prev] if prev else []


def _parents(doc: dict[str, Any], seq: int) -> list[str]:
    parents = doc["parents"]
    if not (
        isinstance(parents, list)
        and len(parents) == 2
        and all(isinstance(p, str) and is_object_id(p) for p in parents)
    ):
        raise Malformed(f"has the parents {parents!r} (a merge names two event ids)")
    if parents[0] == parents[1]:
        raise Malformed("names the same event twice as its parents")
    if seq < 1:
        raise Malformed(f"is a merge at seq {seq}: a merge comes after its parents")
    return list(parents)


def clean(value: Any, redactor: Redactor, key: str | None, where: str) -> Any:
    """``value`` as plain JSON with secrets masked: a string under a secret-looking key whole,
    any other string where a rule matches; a value JSON cannot hold raises."""
    if isinstance(value, str):
        return redactor.redact(value) if key is None else redactor.redact_value(key, value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{where} is {value}: an event holds finite numbers only")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise UsageError(f"{where} has the key {k!r}: an event's keys are strings")
            name = redactor.redact(k)
            out[name] = clean(v, redactor, k, f"{where}.{name}")
        return out
    if isinstance(value, list | tuple):
        return [clean(v, redactor, key, f"{where}[{i}]") for i, v in enumerate(value)]
    raise UsageError(
        f"{where} is a {type(value).__name__}: an event holds JSON values only "
        "(text, numbers, true/false, null, lists and objects)"
    )
