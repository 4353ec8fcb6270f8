"""Hash-chained event logs: one append-only chain of events per name (``prompts``, ``registry``).

An event is a record object, ``{"tether":"record","kind":"event",...}``, holding its position
``seq`` (0, 1, 2…), the id of the event before it (``prev``, also its only ``links`` entry, so gc
and push keep the whole chain alive from its head), the chain's name (``log``) and what happened:
``event`` (the event's kind), ``actor``, ``time`` and ``body``. An id is the hash of the bytes and
the bytes hold ``prev``: changing any event changes every id after it, so the head pins the whole
history.

The head is the ref ``events/<name>``. Appends are serialised by one lock per chain and write in
the store's order: the event object, a barrier, then the head. Chains never merge: the head only
moves forward, to a chain that contains it (:meth:`EventLog.advance`). The log is pushed, so
strings in an event pass through the redactor before they are sealed.
"""

from __future__ import annotations

import json
import math
import re
import time as _time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.errors import FormatError, MissingObjectError, UsageError
from tether.hashing import hash_bytes, is_object_id
from tether.objects.lock import file_lock
from tether.objects.refs import RefStore
from tether.objects.store import ObjectStore
from tether.redact import Redactor

FORMAT = 1
REF_PREFIX = "events/"
# the lock gc holds exclusively (``Workspace.writing`` holds it shared): an event written but not
# yet under the head is reachable from nothing, and gc must not delete it
STORE_LOCK = "store.lock"
HINT = "`tether audit verify` reports it"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_FIELDS = frozenset(
    ("tether", "kind", "format", "links", "log", "seq", "prev", "event", "actor", "time", "body")
)


@dataclass(frozen=True)
class Event:
    """One sealed event: ``id`` is the hash of its bytes, ``prev`` the id of the event before."""

    id: str
    seq: int
    prev: str | None
    kind: str
    actor: str
    time: float
    body: dict[str, Any]


@dataclass(frozen=True)
class Verification:
    """``count`` events were reached from the head; ``problem`` is the oldest one found."""

    ok: bool
    count: int
    problem: str | None = None
    at_seq: int | None = None


class _Malformed(Exception):
    """Bytes that are not an event of this chain; the message completes "the event …"."""


class EventLog:
    """The chain ``name``: events in ``store``, its head in ``refs``, its lock in ``lock_dir``."""

    def __init__(
        self,
        store: ObjectStore,
        refs: RefStore,
        name: str,
        lock_dir: Path,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise UsageError(
                f"{name!r} is not an event log name (lowercase letters, digits, _ and -)"
            )
        self.store = store
        self.refs = refs
        self.name = name
        self.ref = REF_PREFIX + name
        self.lock_dir = lock_dir
        self.redactor = redactor or Redactor()

    # -- writing ---------------------------------------------------------------------------
    def append(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        actor: str,
        time: float | None = None,
        sign: Callable[[bytes], dict[str, Any]] | None = None,
    ) -> Event:
        """Seal one event after the head and move the head to it; secrets are masked first.
        ``sign`` (bytes to sign -> envelope) signs :func:`signed_bytes` of the event, once its
        position is known; the envelope is kept as ``body["signed"]``."""
        if not _KIND.match(kind):
            raise UsageError(
                f"{kind!r} is not an event kind (a lowercase name such as `approve` or `label.set`)"
            )
        when = _time.time() if time is None else float(time)
        if not math.isfinite(when):
            raise UsageError(f"an event's time must be a finite number, not {when}")
        clean = _clean(body, self.redactor, None, "body")
        who = self.redactor.redact(actor)
        with self._locked():
            head = self.head()
            seq = 0 if head is None else self._event(head).seq + 1
            if sign is not None:
                parents = [head] if head else []
                clean["signed"] = sign(_signed(self.name, parents, kind, who, when, clean))
            data = _dump(self.name, seq, head, kind, who, when, clean)
            oid = self.store.put_bytes(data)
            self.store.barrier()  # the event is durable before the head points at it
            self.refs.set(self.ref, [oid])
        return _parse(data, oid, self.name)

    def advance(self, new_head: str) -> bool:
        """Move the head forward to ``new_head`` (a fetched chain that extends this one).

        False when this chain already contains ``new_head``. Every new event is checked first; a
        chain that does not contain the head is refused (event logs never merge). The caller has
        made the new events durable.
        """
        if not self.store.has(new_head):
            raise MissingObjectError([new_head], hint="fetch the events before moving the head")
        with self._locked():
            head = self.head()
            if head is not None and self.is_ancestor(new_head, head):
                return False
            if not self._reaches(new_head, head):
                raise UsageError(
                    f"the event log {self.name} has diverged: {new_head[:19]}… does not extend "
                    f"the head {str(head)[:19]}…, and event logs never merge; keep one history"
                )
            self.refs.set(self.ref, [new_head])
        return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (
            file_lock(self.lock_dir / STORE_LOCK, exclusive=False),
            file_lock(self.lock_dir / f"events-{self.name}.lock", exclusive=True),
        ):
            yield

    # -- reading ---------------------------------------------------------------------------
    def head(self) -> str | None:
        """The newest event's id, or None for an empty log."""
        oid, problem = self._head()
        if problem is not None:
            raise FormatError(self._broken(problem))
        return oid

    def events(self) -> list[Event]:
        """Every event, oldest first; a broken chain raises :class:`FormatError`."""
        found = list(self._walk(self.head()))
        found.reverse()
        return found

    def contains(self, older_head: str | None) -> bool:
        """Whether the chain ending at ``older_head`` is a prefix of this one."""
        return self.is_ancestor(older_head, self.head())

    def is_ancestor(self, older: str | None, newer: str | None) -> bool:
        """Whether moving a head from ``older`` to ``newer`` is a fast-forward: ``older`` is
        ``newer`` or an event before it. The empty chain (None) comes before every chain."""
        if newer is None:
            return older is None
        return older is None or self._reaches(newer, older)

    def _reaches(self, newer: str, older: str | None) -> bool:
        """Walk down from ``newer``, checking each link, until ``older`` (event 0 for None)."""
        stop = -1  # an event this store lacks is in none of its chains: walk down to event 0
        if older is not None and self.store.has(older):
            stop = self._event(older, "the event").seq
        for event in self._walk(newer):
            if event.id == older:
                return True
            if event.seq <= stop:
                return False
        return older is None

    def verify(self) -> Verification:
        """Check the chain from the head down; reports the oldest broken link, never raises.

        Every event must be present, hash to its id, parse as an event of this log, and link
        to the event one lower in ``seq``, down to event 0.
        """
        return self.checked_events()[0]

    def checked_events(self) -> tuple[Verification, list[Event]]:
        """:meth:`verify`, and the events it read (oldest first) from the same single walk."""
        oid, problem = self._head()
        if problem is not None:
            return Verification(False, 0, problem, None), []
        count, at_seq = 0, None
        child: Event | None = None
        seen: list[Event] = []
        while oid is not None:
            event, trouble, at = self._link(oid, child)
            if trouble is not None:
                problem, at_seq = trouble, at
            if event is None:
                break
            count += 1
            seen.append(event)
            child, oid = event, event.prev
        seen.reverse()
        return Verification(problem is None, count, problem, at_seq), seen

    def events_after(self, older: str) -> list[Event] | None:
        """The events newer than ``older``, oldest first (None when the chain does not hold
        ``older``): what a reader that folded the chain up to ``older`` has not seen yet."""
        newer: list[Event] = []
        for event in self._walk(self.head()):
            if event.id == older:
                newer.reverse()
                return newer
            newer.append(event)
        return None

    def _head(self) -> tuple[str | None, str | None]:
        """The head's id and what is wrong with the head ref, if anything."""
        try:
            ids = self.refs.get(self.ref)
        except FormatError:
            return None, f"the head ref {self.ref} is corrupt (it must hold one event id)"
        if ids is None:
            return None, None
        if len(ids) != 1:
            return None, f"the head ref {self.ref} holds {len(ids)} ids (a chain has one head)"
        return ids[0], None

    def _walk(self, oid: str | None) -> Iterator[Event]:
        """The events from ``oid`` down to event 0, newest first; a broken link raises."""
        child: Event | None = None
        while oid is not None:
            event, trouble, _ = self._link(oid, child)
            if trouble is not None or event is None:
                raise FormatError(self._broken(trouble or "unreadable event"))
            yield event
            child, oid = event, event.prev

    def _event(self, oid: str, what: str = "the head event") -> Event:
        """One event, checked on its own; a problem raises."""
        event, trouble, _ = self._link(oid, None, what)
        if trouble is not None or event is None:
            raise FormatError(self._broken(trouble or "unreadable event"))
        return event

    def _link(
        self, oid: str, child: Event | None, what: str = "the head event"
    ) -> tuple[Event | None, str | None, int | None]:
        """Read the event ``oid`` that ``child`` links to: the event when it can be read (even
        when changed, so a walk goes on to older problems), the problem and the seq it is at."""
        expected = None if child is None else child.seq - 1
        what = f"{what if expected is None else f'event {expected}'} ({oid[:19]}…)"
        try:
            data = self.store.read_bytes(oid)
        except MissingObjectError:
            return None, f"{what} is missing from the cache", expected
        malformed: str | None = None
        try:
            event: Event | None = _parse(data, oid, self.name)
        except _Malformed as exc:
            event, malformed = None, f"{what} {exc}"
        in_place = event is not None and expected in (None, event.seq)
        if hash_bytes(data) != oid:  # go on below a changed event only while it looks in place
            at = expected if expected is not None else event.seq if event else None
            changed = f"{what} was changed: its bytes no longer match its id"
            return (event if in_place else None), changed, at
        if event is None or expected is None or event.seq == expected:
            return event, malformed, expected
        gap = (
            f"event {expected + 1} links to event {event.seq} instead of event {expected}: "
            "the chain has a gap"
        )
        return None, gap, min(expected, event.seq + 1)

    def _broken(self, problem: str) -> str:
        return f"the event log {self.name} is broken: {problem}; {HINT}"


def signed_bytes(event: Event, log: str) -> bytes:
    """What an event's ``body["signed"]`` envelope signs: its log, parents, kind, actor, time and
    body (without the envelope), so a signature cannot be moved to another place in a chain."""
    body = {k: v for k, v in event.body.items() if k != "signed"}
    parents = [event.prev] if event.prev else []
    return _signed(log, parents, event.kind, event.actor, event.time, body)


def _signed(
    log: str, parents: list[str], kind: str, actor: str, time: float, body: dict[str, Any]
) -> bytes:
    doc = {"log": log, "parents": parents, "event": kind, "actor": actor, "time": time}
    doc["body"] = body
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _dump(
    log: str, seq: int, prev: str | None, kind: str, actor: str, time: float, body: dict[str, Any]
) -> bytes:
    doc = {
        "kind": "event",
        "format": FORMAT,
        "links": [prev] if prev else [],
        "log": log,
        "seq": seq,
        "prev": prev,
        "event": kind,
        "actor": actor,
        "time": time,
        "body": body,
    }
    rest = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ('{"tether":"record",' + rest[1:]).encode()  # the header gc and push look for


def _parse(data: bytes, oid: str, log: str) -> Event:
    try:
        doc = json.loads(data)
    except ValueError:
        raise _Malformed("is not JSON") from None
    if not isinstance(doc, dict) or doc.get("tether") != "record" or doc.get("kind") != "event":
        raise _Malformed("is not an event record")
    if doc.get("format") != FORMAT:
        raise _Malformed(
            f"has format {doc.get('format')}; this Tether reads format {FORMAT}: upgrade Tether"
        )
    if doc.keys() != _FIELDS:
        raise _Malformed(f"has the fields {sorted(doc)}, not {sorted(_FIELDS)}")
    seq, prev, moment = doc["seq"], doc["prev"], doc["time"]
    if type(seq) is not int or seq < 0:
        raise _Malformed(f"has the seq {seq!r} (a number from 0 up)")
    if prev is not None and not (isinstance(prev, str) and is_object_id(prev)):
        raise _Malformed(f"has the prev {prev!r} (an event id or null)")
    if (seq == 0) != (prev is None):
        raise _Malformed(f"is event {seq} with prev {prev}: only event 0 has no prev")
    if doc["links"] != ([prev] if prev else []):
        raise _Malformed("lists links other than its prev")
    if doc["log"] != log:
        raise _Malformed(f"belongs to the event log {doc['log']!r}, not {log!r}")
    if not (isinstance(doc["event"], str) and _KIND.match(doc["event"])):
        raise _Malformed(f"has the kind {doc['event']!r}")
    if not isinstance(doc["actor"], str) or not isinstance(doc["body"], dict):
        raise _Malformed("has an actor that is not text or a body that is not an object")
    if type(moment) not in (int, float) or not math.isfinite(moment):
        raise _Malformed(f"has the time {moment!r}")
    return Event(oid, seq, prev, doc["event"], doc["actor"], float(moment), doc["body"])


def _clean(value: Any, redactor: Redactor, key: str | None, where: str) -> Any:
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
            out[name] = _clean(v, redactor, k, f"{where}.{name}")
        return out
    if isinstance(value, list | tuple):
        return [_clean(v, redactor, key, f"{where}[{i}]") for i, v in enumerate(value)]
    raise UsageError(
        f"{where} is a {type(value).__name__}: an event holds JSON values only "
        "(text, numbers, true/false, null, lists and objects)"
    )


def parse(data: bytes, oid: str, log: str) -> Event:
    """The event ``oid`` of chain ``log`` from its bytes, which must hash to ``oid``
    (FormatError naming what is wrong otherwise)."""
    if hash_bytes(data) != oid:
        raise FormatError(f"the event {oid[:19]}… of the {log} log does not match its id")
    try:
        return _parse(data, oid, log)
    except _Malformed as exc:
        raise FormatError(f"the event {oid[:19]}… of the {log} log {exc}") from None
