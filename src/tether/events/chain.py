"""Hash-chained event logs: one append-only history of events per name (``prompts``,
``registry``).

An event (``format.py``) holds its position ``seq`` (0, 1, 2…), the ids of the events before it
(``prev``, or a merge's two ``parents``; its ``links`` too, so gc and push keep the whole history
alive from its head), the log's name (``log``) and what happened: ``event`` (the event's kind),
``actor``, ``time`` and ``body``. An id is the hash of the bytes and the bytes hold the parents:
changing any event changes every id after it, so the head pins the whole history.

The head is the ref ``events/<name>``. Appends are serialised by one lock per log and write in
the store's order: the event object, a barrier, then the head. The head moves forward only: to
a history that contains it (:meth:`EventLog.advance`), or to a ``log.merge`` event that joins it
with another clone's history (:meth:`EventLog.merge`); events are never rewritten. The log is
pushed, so strings in an event pass through the redactor before they are sealed.
"""

from __future__ import annotations

import math
import re
import time as _time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from tether.errors import FormatError, MissingObjectError, UsageError
from tether.events import walk
from tether.events.format import KIND as _KIND
from tether.events.format import MERGE, Event, Malformed, clean, dump, signed_bytes, signed_doc
from tether.events.format import parse as parse_event
from tether.events.walk import HINT, Verification
from tether.hashing import hash_bytes
from tether.objects.lock import file_lock
from tether.objects.refs import RefStore
from tether.objects.store import ObjectStore
from tether.redact import Redactor

__all__ = [
    "HINT", "MERGE", "STORE_LOCK", "Event", "EventLog", "Verification", "parse", "signed_bytes",
]  # fmt: skip

REF_PREFIX = "events/"
# the lock gc holds exclusively (``Workspace.writing`` holds it shared): an event written but not
# yet under the head is reachable from nothing, and gc must not delete it
STORE_LOCK = "store.lock"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
AT: ContextVar[float | None] = ContextVar("tether_event_time", default=None)


@contextmanager
def at_time(when: float) -> Iterator[None]:
    """Events sealed in the block are dated ``when``: a decision made again, to take one more
    signature of a browser, seals the very bytes it signed before."""
    token = AT.set(when)
    try:
        yield
    finally:
        AT.reset(token)


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
        if not _KIND.match(kind) or kind == MERGE:
            raise UsageError(
                f"{kind!r} is not an event kind (a lowercase name such as `approve` or "
                "`label.set`; a merge is written by a pull)"
            )
        with self._locked():
            head = self.head()
            seq = 0 if head is None else self._event(head).seq + 1
            return self._seal(kind, body, [head] if head else [], seq, actor, time, sign)

    def merge(
        self,
        ours: str,
        theirs: str,
        body: Mapping[str, Any],
        *,
        actor: str,
        time: float | None = None,
        sign: Callable[[bytes], dict[str, Any]] | None = None,
    ) -> Event:
        """Seal a ``log.merge`` event whose parents are ``ours`` (the head, which must not have
        moved since) and ``theirs`` (another clone's head, fetched and checked), one past the
        newer of the two, and move the head to it. Neither may contain the other."""
        if not self.store.has(theirs):
            raise MissingObjectError([theirs], hint="fetch the events before merging them")
        with self._locked():
            head = self.head()
            if head != ours:
                raise UsageError(f"the event log {self.name} moved while it was being merged: "
                                 "run the pull again")  # fmt: skip
            reader = self._reader()
            if walk.reaches(reader, ours, theirs) or walk.reaches(reader, theirs, ours):
                raise UsageError(f"{theirs[:19]}… and {ours[:19]}… have not diverged: "
                                 "nothing to merge")  # fmt: skip
            seq = max(reader.get(ours).seq, reader.get(theirs).seq) + 1
            return self._seal(MERGE, body, [ours, theirs], seq, actor, time, sign)

    def _seal(
        self, kind: str, body: Mapping[str, Any], parents: list[str], seq: int, actor: str,
        time: float | None, sign: Callable[[bytes], dict[str, Any]] | None,
    ) -> Event:  # fmt: skip
        fixed = AT.get()
        when = (_time.time() if fixed is None else fixed) if time is None else float(time)
        if not math.isfinite(when):
            raise UsageError(f"an event's time must be a finite number, not {when}")
        sealed = clean(body, self.redactor, None, "body")
        who = self.redactor.redact(actor)
        if sign is not None:
            sealed["signed"] = sign(signed_doc(self.name, parents, kind, who, when, sealed))
        data = dump(self.name, seq, parents, kind, who, when, sealed)
        oid = self.store.put_bytes(data)
        self.store.barrier()  # the event is durable before the head points at it
        self.refs.set(self.ref, [oid])
        return parse_event(data, oid, self.name)

    def advance(self, new_head: str, *, expected: str | bool | None = False) -> bool:
        """Move the head forward to ``new_head`` (a fetched history that contains the head).

        False when this log already contains ``new_head``. Every new event is checked first; a
        history that does not contain the head is refused (:meth:`merge` joins two). With
        ``expected``, the head must still be that (None: empty). The caller has made the new
        events durable.
        """
        if not self.store.has(new_head):
            raise MissingObjectError([new_head], hint="fetch the events before moving the head")
        with self._locked():
            head = self.head()
            if expected is not False and head != expected:
                raise UsageError(f"the event log {self.name} moved meanwhile: run the pull again")
            reader = self._reader()
            walk.new_since(reader, new_head, [head])  # every new event read and checked
            if head is not None and walk.reaches(reader, head, new_head):
                return False
            if head is not None and not walk.reaches(reader, new_head, head):
                raise UsageError(
                    f"the event log {self.name} has diverged: {new_head[:19]}… does not contain "
                    f"the head {head[:19]}…; a pull merges the two (`tether model pull`, "
                    "`tether prompt pull`)"
                )
            self.refs.set(self.ref, [new_head])
        return True

    def reset(self, new_head: str, *, expected: str | None) -> list[Event]:
        """Drop the events of the head that ``new_head`` (another clone's, checked here) does
        not hold, and move the head there: what ``--discard-local`` does. The dropped events,
        in fold order (their objects stay until gc)."""
        if not self.store.has(new_head):
            raise MissingObjectError([new_head], hint="fetch the events before moving the head")
        with self._locked():
            head = self.head()
            if head != expected:
                raise UsageError(f"the event log {self.name} moved meanwhile: run the pull again")
            reader = self._reader()
            walk.new_since(reader, new_head, [head])
            dropped = walk.new_since(reader, head, [new_head]) if head is not None else {}
            self.refs.set(self.ref, [new_head])
        return walk.order(dropped, head)

    def undo(self, to: str | None, *, expected: str) -> None:
        """Take the head back to ``to`` (None: empty), an event it contains: the events since
        were made here and never left (a decision the team server did not take). The head must
        still be ``expected``; the events' objects stay until gc."""
        with self._locked():
            if self.head() != expected:
                raise UsageError(f"the event log {self.name} moved meanwhile: run it again")
            if to is not None and not walk.reaches(self._reader(), expected, to):
                raise UsageError(f"{to[:19]}… is not in the event log {self.name}")
            if to is None:
                self.refs.delete(self.ref)
            else:
                self.refs.set(self.ref, [to])

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

    def events(self, head: str | None = None) -> list[Event]:
        """Every event (of the head, or of ``head``) in fold order, oldest first (see
        :func:`~tether.events.walk.order`); a broken history raises :class:`FormatError`."""
        head = self.head() if head is None else head
        if head is None:
            return []
        checked, found = walk.check(self._reader(), head)
        if not checked.ok:
            raise FormatError(self._broken(checked.problem or "unreadable event"))
        return walk.order(found, head)

    def contains(self, older_head: str | None) -> bool:
        """Whether the history ending at ``older_head`` is part of this one."""
        return self.is_ancestor(older_head, self.head())

    def is_ancestor(self, older: str | None, newer: str | None) -> bool:
        """Whether moving a head from ``older`` to ``newer`` is a fast-forward: ``older`` is
        ``newer`` or an event before it. The empty log (None) comes before every log."""
        if newer is None:
            return older is None
        return older is None or walk.reaches(self._reader(), newer, older)

    def new_events(self, newer: str, older: str | None) -> list[Event]:
        """The events of ``newer`` that ``older`` does not hold, each checked, in fold order."""
        return walk.order(walk.new_since(self._reader(), newer, [older]), newer)

    def verify(self) -> Verification:
        """Check the history from the head down; reports the oldest broken link, never raises.

        Every event must be present, hash to its id, parse as an event of this log, and link
        to the event one lower in ``seq`` (a merge: to older events, one past the newer), down
        to event 0.
        """
        return self.checked_events()[0]

    def checked_events(self) -> tuple[Verification, list[Event]]:
        """:meth:`verify`, and the events it read (in fold order) from the same single walk."""
        oid, problem = self._head()
        if problem is not None:
            return Verification(False, 0, problem, None), []
        if oid is None:
            return Verification(True, 0), []
        checked, found = walk.check(self._reader(), oid)
        return checked, walk.order(found, oid)

    def events_after(self, older: str, head: str | None = None) -> list[Event] | None:
        """The events of the head (or ``head``) a reader that folded up to ``older`` has not
        seen, in fold order; None when that reader must fold from the start (``older`` is not on
        the head's first-parent line, or not in the log)."""
        head = self.head() if head is None else head
        if head is None:
            return None
        return walk.after(self._reader(), head, older)

    def _head(self) -> tuple[str | None, str | None]:
        """The head's id and what is wrong with the head ref, if anything."""
        try:
            ids = self.refs.get(self.ref)
        except FormatError:
            return None, f"the head ref {self.ref} is corrupt (it must hold one event id)"
        if ids is None:
            return None, None
        if len(ids) != 1:
            return None, f"the head ref {self.ref} holds {len(ids)} ids (a log has one head)"
        return ids[0], None

    def event(self, oid: str) -> Event:
        """The event ``oid``, checked on its own (a problem raises :class:`FormatError`)."""
        return self._event(oid, "the event")

    def _reader(self) -> walk.Reader:
        return walk.Reader(self.store, self.name)

    def _event(self, oid: str, what: str = "the head event") -> Event:
        """One event, checked on its own; a problem raises."""
        return self._reader().get(oid, None, what)

    def _broken(self, problem: str) -> str:
        return f"the event log {self.name} is broken: {problem}; {HINT}"


def parse(data: bytes, oid: str, log: str) -> Event:
    """The event ``oid`` of the log ``log`` from its bytes, which must hash to ``oid``
    (:class:`FormatError` naming what is wrong otherwise)."""
    if hash_bytes(data) != oid:
        raise FormatError(f"the event {oid[:19]}… of the {log} log does not match its id")
    try:
        return parse_event(data, oid, log)
    except Malformed as exc:
        raise FormatError(f"the event {oid[:19]}… of the {log} log {exc}") from None
