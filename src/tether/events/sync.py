"""Pulling an event log from a git remote, append-only: fetch the remote's log into a side ref,
store and check what arrived, and only then move the local head.

The outcomes: *up to date*; *ahead* (this clone holds everything the remote has, and more: push
it); *fast-forward* (the remote's log contains this one); *merged* (both moved on: a
``log.merge`` event names both heads, as a two-parent git commit does, once no genuine conflict
stands between them); *discarded* (``--discard-local``: this clone's unpushed events are dropped
and the head goes to the remote's). Events are never rewritten or re-chained: their ids are
what requests, approvals and tags refer to.

What a log's rules refuse (an event that does not verify) is named and never becomes part of
the log: the head goes to the newest event before it, or stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import FormatError, TetherError
from tether.events import gitmirror
from tether.events.chain import Event, EventLog
from tether.events.gitmirror import INCOMING_TAGS, git_ref, rev, tag_events
from tether.gitio.repo import git

UP_TO_DATE = "up to date"
AHEAD = "ahead"
FAST_FORWARD = "fast-forward"
MERGED = "merged"
DISCARDED = "discarded"
NOTHING = "nothing taken"  # what arrived was refused from its first new event


@dataclass(frozen=True)
class Refusal:
    """An event the remote has that does not verify here, and why."""

    event: str
    kind: str
    why: str

    def __str__(self) -> str:
        return f"{self.event[7:19]} {self.kind}: {self.why}"


@dataclass(frozen=True)
class Candidate:
    """A head this clone could take: ``new`` are its events this clone lacks, in the order they
    would be folded after this clone's own (``merge``), or as ``head``'s own order."""

    head: str
    new: list[Event]
    merge: bool


@dataclass(frozen=True)
class Pulled:
    """What a pull did: the ``outcome``, how many events ``arrived`` (now in the log), the
    merge event it wrote, the events it ``refused``, the local events it ``dropped``
    (``--discard-local``) and the local events the remote lacks (``unpushed``)."""

    outcome: str
    arrived: int = 0
    merge: str | None = None
    refused: tuple[Refusal, ...] = ()
    dropped: int = 0
    unpushed: int = 0
    head: str | None = None


Sign = Callable[[bytes], dict[str, Any]]


@dataclass
class Rules:
    """What one log (the registry's, the prompts') asks of a pull.

    ``verify`` names the new events of a candidate head that do not hold; ``conflicts`` names
    what both sides made (this clone's new events, the remote's) that cannot both stand;
    ``merger`` gives the actor and signer of a merge event (or raises: no key may merge);
    ``error`` is the error a refusal raises, ``command`` the pull command to name."""

    verify: Callable[[Candidate], list[Refusal]]
    conflicts: Callable[[list[Event], list[Event]], list[str]]
    merger: Callable[[], tuple[str, Sign | None]]
    error: type[TetherError]
    command: str
    extra: list[str] = field(default_factory=list)  # refs fetched into side refs too


def pull(root: Path, remote: str, log: EventLog, rules: Rules, *, discard: bool = False) -> Pulled:
    """Fetch ``remote``'s log and take what verifies, as the module says."""
    mirror = gitmirror.fetch(root, remote, [git_ref(log.name), *rules.extra])[git_ref(log.name)]
    ours = log.head()
    if mirror is None:
        _take_tags(root, log, set(), set())
        unpushed = 0 if ours is None else len(log.new_events(ours, None))
        return Pulled(UP_TO_DATE if ours is None else AHEAD, unpushed=unpushed, head=ours)
    mine: list[Event] | None = None
    try:
        arrived = gitmirror.import_events(root, log, mirror)
        theirs = arrived.head
        if theirs is None:
            raise FormatError(f"the remote's {git_ref(log.name)} carries no event")
        if theirs == ours or (ours is not None and log.is_ancestor(theirs, ours)):
            _take_tags(root, log, set(), set())
            if theirs == ours:
                return Pulled(UP_TO_DATE, head=ours)
            return Pulled(AHEAD, unpushed=len(log.new_events(ours or "", theirs)), head=ours)
        if not discard and ours is not None and not log.is_ancestor(ours, theirs):
            mine = _no_conflicts(remote, log, rules, ours, theirs)
        head, new, refused = _verified(log, rules, ours, theirs, discard)
    except FormatError as exc:
        raise rules.error(f"the {log.name} log on {remote} was not taken: {exc}") from None
    if head is None:
        _take_tags(root, log, set(), set())
        return Pulled(NOTHING, refused=refused, head=ours)
    commit = arrived.commits.get(head) or (mirror if head == theirs else "")
    if not commit:
        raise rules.error(f"the {log.name} log on {remote} was not taken: no commit of its "
                          f"git mirror carries the event {head[:19]}…")  # fmt: skip
    ids = {e.id for e in new}
    if ours is None or log.is_ancestor(ours, head):
        log.advance(head, expected=ours)
        git(root, "update-ref", git_ref(log.name), commit, rev(root, git_ref(log.name)) or "")
        _take_tags(root, log, ids, set())
        return Pulled(FAST_FORWARD, len(new), refused=refused, head=head)
    if discard:
        dropped = log.reset(head, expected=ours)
        git(root, "update-ref", git_ref(log.name), commit)
        _take_tags(root, log, ids, {e.id for e in dropped})
        return Pulled(DISCARDED, len(new), refused=refused, dropped=len(dropped), head=head)
    if mine is None or head != theirs:
        mine = _no_conflicts(remote, log, rules, ours, head)
    actor, sign = rules.merger()
    ev = log.merge(ours, head, {"remote": remote}, actor=actor, sign=sign)
    gitmirror.record(root, log, ev, theirs=commit)
    _take_tags(root, log, ids, set())
    return Pulled(MERGED, len(new), ev.id, refused, unpushed=len(mine) + 1, head=ev.id)


def _no_conflicts(remote: str, log: EventLog, rules: Rules, ours: str, theirs: str) -> list[Event]:
    """This clone's events the remote lacks, once none of them conflicts with the remote's."""
    mine = log.new_events(ours, theirs)
    clashes = rules.conflicts(mine, log.new_events(theirs, ours))
    if clashes:
        raise rules.error(
            f"cannot merge {remote}'s {log.name} log with this clone's: both made "
            f"{'; '.join(clashes)}. Keep {remote}'s with `{rules.command} --discard-local` (it "
            f"drops this clone's {len(mine)} unpushed event(s)), then redo what they did"
        )
    return mine


def _verified(
    log: EventLog, rules: Rules, ours: str | None, theirs: str, discard: bool
) -> tuple[str | None, list[Event], tuple[Refusal, ...]]:
    """The newest head of ``theirs`` whose new events all verify (None: not even the first
    does), those events, and every refusal met on the way."""
    refused: dict[str, Refusal] = {}
    head: str | None = theirs
    while head is not None:
        new = log.new_events(head, ours)
        merging = not discard and ours is not None and not log.is_ancestor(ours, head)
        ids = {e.id for e in new}
        found = [r for r in rules.verify(Candidate(head, new, merging)) if r.event in ids]
        if not found:
            return head, new, tuple(refused.values())
        for r in found:
            refused.setdefault(r.event, r)
        first = next(i for i, e in enumerate(new) if e.id in {r.event for r in found})
        head = new[first - 1].id if first else None
        if head is not None and ours is not None and log.is_ancestor(head, ours):
            head = None
    return None, [], tuple(refused.values())


def _take_tags(root: Path, log: EventLog, arrived: set[str], dropped: set[str]) -> None:
    """The remote's tags this clone lacks, but none whose message names an event that is not
    in the log (one of another log is that log's pull's to take); a tag of a dropped event is
    replaced by the remote's or deleted."""
    theirs = tag_events(root, INCOMING_TAGS)
    mine = tag_events(root, "refs/tags/")
    head = log.head()
    lines = []
    for name, (obj, event) in sorted(theirs.items()):
        have = mine.get(name)
        if have is not None and (have[0] == obj or have[1] not in dropped):
            continue
        if event is not None and event not in arrived and not _in_log(log, event, head):
            continue
        lines.append(f"create refs/tags/{name} {obj}" if have is None
                     else f"update refs/tags/{name} {obj} {have[0]}")  # fmt: skip
        mine[name] = (obj, event)
    for name, (obj, event) in sorted(mine.items()):
        if event is not None and event in dropped:
            lines.append(f"delete refs/tags/{name} {obj}")
    if lines:
        git(root, "update-ref", "--stdin", stdin=("\n".join(lines) + "\n").encode())


def _in_log(log: EventLog, event: str, head: str | None) -> bool:
    try:
        return log.store.has(event) and log.is_ancestor(event, head)
    except FormatError:  # an event of another log
        return False
