"""Walking an event log's history: a graph of events, each linking to its parents (one, or two
for a merge), every link checked as it is read.

The order every reader folds a log in is :func:`order`: parents before children, and at a merge
all of its first parent's side (ours) before the events only its second parent (theirs) brings;
it is a function of the head alone, so every clone folds the same history the same way. A
reader that folded up to an event on the head's first-parent line (the line a log's own appends
and merges extend) holds a prefix of that order, and needs only the rest (:func:`after`).

``seq`` only grows along a link (an event is one past its parent, a merge one past its newer
parent), so a walk that reads the highest ``seq`` first has seen every child of an event before
the event itself (:func:`new_since`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tether.errors import FormatError, MissingObjectError
from tether.events.format import Event, Malformed, parse
from tether.hashing import hash_bytes
from tether.objects.store import ObjectStore

HINT = "`tether audit verify` reports it"


@dataclass(frozen=True)
class Verification:
    """``count`` events were reached from the head; ``problem`` is the oldest one found."""

    ok: bool
    count: int
    problem: str | None = None
    at_seq: int | None = None


class Reader:
    """The events of the log ``log`` in ``store``, read once each and checked as they are."""

    def __init__(self, store: ObjectStore, log: str) -> None:
        self.store = store
        self.log = log
        self.read: dict[str, Event] = {}

    def broken(self, problem: str) -> str:
        return f"the event log {self.log} is broken: {problem}; {HINT}"

    def get(self, oid: str, child: Event | None = None, what: str = "the head event") -> Event:
        """The event ``oid`` (that ``child`` links to); a problem raises :class:`FormatError`."""
        found = self.read.get(oid)
        if found is not None:
            problem = edge_problem(child, found) if child is not None else None
            if problem is not None:
                raise FormatError(self.broken(problem))
            return found
        event, trouble, _ = self.link(oid, child, what)
        if trouble is not None or event is None:
            raise FormatError(self.broken(trouble or "unreadable event"))
        self.read[oid] = event
        return event

    def link(
        self, oid: str, child: Event | None, what: str = "the head event"
    ) -> tuple[Event | None, str | None, int | None]:
        """Read the event ``oid`` that ``child`` links to: the event when it can be read (even
        when changed, so a walk goes on to older problems), the problem and the seq it is at."""
        exact = child is not None and child.merged is None
        expected = None if child is None else child.seq - 1
        if child is None:
            name = what
        elif exact:
            name = f"event {expected}"
        else:
            name = f"a parent of the merge event {child.seq}"
        name = f"{name} ({oid[:19]}…)"
        try:
            data = self.store.read_bytes(oid)
        except MissingObjectError:
            return None, f"{name} is missing from the cache", expected
        malformed: str | None = None
        try:
            event: Event | None = parse(data, oid, self.log)
        except Malformed as exc:
            event, malformed = None, f"{name} {exc}"
        fits = event is not None and (
            expected is None or (event.seq == expected if exact else event.seq <= expected)
        )
        if hash_bytes(data) != oid:  # go on below a changed event only while it looks in place
            at = expected if expected is not None else event.seq if event else None
            changed = f"{name} was changed: its bytes no longer match its id"
            return (event if fits else None), changed, at
        if event is None or child is None or fits:
            return event, malformed, expected
        assert expected is not None
        return None, edge_problem(child, event), min(expected, event.seq + 1)


def edge_problem(child: Event, parent: Event) -> str | None:
    """What is wrong with ``child`` linking to ``parent`` (None: the link holds)."""
    if child.merged is None:
        if parent.seq == child.seq - 1:
            return None
        return (
            f"event {child.seq} links to event {parent.seq} instead of event {child.seq - 1}: "
            "the chain has a gap"
        )
    if parent.seq < child.seq:
        return None
    return f"the merge event {child.seq} names event {parent.seq}, which is not older than it"


def check(reader: Reader, head: str) -> tuple[Verification, dict[str, Event]]:
    """Every event reachable from ``head``, each link checked; the oldest problem found, and
    the events read (a changed event still in place among them, so the walk goes on below)."""
    problems: list[tuple[int | None, str]] = []
    found: dict[str, Event] = {}
    stack: list[tuple[str, Event | None]] = [(head, None)]
    while stack:
        oid, child = stack.pop()
        if oid in found:
            problem = edge_problem(child, found[oid]) if child is not None else None
            if problem is not None:
                problems.append((found[oid].seq, problem))
            continue
        event, trouble, at = reader.link(oid, child)
        if trouble is not None:
            problems.append((at, trouble))
        if event is None:
            continue
        found[oid] = event
        stack.extend((p, event) for p in reversed(event.parents))
    for event in found.values():  # a merge sits one past its newer parent
        seqs = [found[p].seq for p in event.parents if p in found]
        if event.merged is not None and len(seqs) == 2 and max(seqs) != event.seq - 1:
            why = f"the merge event {event.seq} does not come right after its newer parent"
            problems.append((event.seq, f"{why} (event {max(seqs)})"))
    if not problems:
        return Verification(True, len(found)), found
    located = [(a, p) for a, p in problems if a is not None]
    at, problem = min(located, key=lambda p: p[0]) if located else problems[-1]
    return Verification(False, len(found), problem, at), found


def order(events: dict[str, Event], head: str | None) -> list[Event]:
    """``events`` reachable from ``head`` within them, in fold order (see the module's doc)."""
    out: list[Event] = []
    done: set[str] = set()
    stack: list[tuple[str, bool]] = [] if head is None else [(head, False)]
    while stack:
        oid, expanded = stack.pop()
        if expanded:
            out.append(events[oid])
            continue
        if oid in done or oid not in events:
            continue
        done.add(oid)
        stack.append((oid, True))
        stack.extend((p, False) for p in reversed(events[oid].parents))
    return out


_NEW, _OLD = 1, 2


def new_since(reader: Reader, newer: str, older: Iterable[str | None]) -> dict[str, Event]:
    """The events reachable from ``newer`` and from none of ``older`` (None, or ids the store
    lacks, bring nothing), each read and checked; they stop at the newest shared ones."""
    flags: dict[str, int] = {}
    heap: list[tuple[int, str]] = []
    only_new = 0

    def push(oid: str, flag: int, child: Event | None) -> None:
        nonlocal only_new
        event = reader.get(oid, child, "the event")
        before = flags.get(oid)
        if before is None:
            flags[oid] = flag
            heapq.heappush(heap, (-event.seq, oid))
            only_new += flag == _NEW
        elif before | flag != before:
            flags[oid] = before | flag
            only_new -= before == _NEW

    push(newer, _NEW, None)
    for oid in older:
        if oid is not None and reader.store.has(oid):
            push(oid, _OLD, None)
    out: dict[str, Event] = {}
    while heap and only_new:
        _, oid = heapq.heappop(heap)
        flag = flags[oid]
        event = reader.read[oid]
        if flag == _NEW:
            only_new -= 1
            out[oid] = event
        for parent in event.parents:
            push(parent, flag, event)
        if event.merged is not None and max(reader.read[p].seq for p in event.parents) != (
            event.seq - 1
        ):
            why = f"the merge event {event.seq} does not come right after its newer parent"
            raise FormatError(reader.broken(why))
    return out


def first_parents(reader: Reader, head: str, down_to: int) -> Iterator[Event]:
    """The head's first-parent line, newest first, down to the event at seq ``down_to``."""
    oid: str | None = head
    child: Event | None = None
    while oid is not None:
        event = reader.get(oid, child)
        yield event
        if event.seq <= down_to:
            return
        child, oid = event, event.prev


def reaches(reader: Reader, newer: str, older: str) -> bool:
    """Whether ``older`` is ``newer`` or one of its ancestors (every link on the way checked)."""
    if not reader.store.has(older):
        return False
    stop = reader.get(older, None, "the event").seq
    seen = {newer}
    heap = [(-reader.get(newer).seq, newer)]
    while heap:
        neg, oid = heapq.heappop(heap)
        if oid == older:
            return True
        if -neg <= stop:
            continue
        event = reader.read[oid]
        for parent in event.parents:
            if parent not in seen:
                seen.add(parent)
                heapq.heappush(heap, (-reader.get(parent, event, "the event").seq, parent))
    return False


def after(reader: Reader, head: str, older: str) -> list[Event] | None:
    """The events of ``head`` that a fold up to ``older`` has not seen, in fold order; None
    when ``older`` is not on the head's first-parent line (a fold must then start over)."""
    try:
        stop = reader.get(older, None, "the event").seq if reader.store.has(older) else None
    except FormatError:  # not an event of this log
        stop = None
    if stop is None:
        return None
    if not any(e.id == older for e in first_parents(reader, head, stop)):
        return None
    return order(new_since(reader, head, [older]), head)
