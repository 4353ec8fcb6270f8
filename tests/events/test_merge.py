"""Logs that merge: a ``log.merge`` event joins two histories without rewriting either, every
clone reads the joined history in the same order, format-1 logs read as before, and a merge
event changed or made by hand is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import corrupt_object
from tests.events.test_chain import fill, open_log
from tether.errors import UsageError
from tether.events import Event, EventLog
from tether.events.chain import signed_bytes
from tether.events.format import MERGE
from tether.hashing import hash_bytes
from tether.objects.graph import children


def diverge(tmp_path: Path, ours_n: int = 2, theirs_n: int = 3) -> tuple[EventLog, EventLog]:
    """Two clones' logs over one store: a shared start, then each appends its own events."""
    ours = open_log(tmp_path / "cache")
    fill(ours, 2)
    theirs = open_log(tmp_path / "cache", refs="refs-theirs")
    assert theirs.advance(ours.head() or "")
    for i in range(ours_n):
        ours.append("ours", {"i": i}, actor="ana", time=2000.0 + i)
    for i in range(theirs_n):
        theirs.append("theirs", {"i": i}, actor="bo", time=3000.0 + i)
    return ours, theirs


def merge(log: EventLog, other: str) -> Event:
    return log.merge(log.head() or "", other, {"remote": "origin"}, actor="ana", time=4000.0)


def test_a_merge_joins_both_sides_ours_first_and_every_clone_reads_the_same_order(
    tmp_path: Path,
) -> None:
    ours, theirs = diverge(tmp_path)
    mine, their_head = ours.head(), theirs.head()
    assert mine and their_head
    m = merge(ours, their_head)
    assert m.kind == MERGE and m.parents == (mine, their_head) and m.prev == mine
    assert m.seq == 2 + 3  # one past the newer parent (theirs: seq 4)
    events = ours.events()
    assert [e.kind for e in events] == ["transition"] * 2 + ["ours"] * 2 + ["theirs"] * 3 + [MERGE]
    assert ours.verify().ok and ours.verify().count == 8
    # the other clone takes the merge as a fast-forward, and folds the same order
    assert theirs.advance(m.id)
    assert theirs.events() == events
    # a fold up to our head (the merge's first parent) needs only the rest; theirs starts over
    assert [e.kind for e in ours.events_after(mine) or []] == ["theirs"] * 3 + [MERGE]
    assert ours.events_after(their_head) is None
    assert ours.is_ancestor(their_head, m.id) and ours.is_ancestor(mine, m.id)
    assert not ours.is_ancestor(m.id, mine)
    # gc and push follow both parents
    assert sorted(children(ours.store.read_bytes(m.id), m.id)) == sorted([mine, their_head])


def test_nested_merges_keep_parents_before_children_and_first_parent_side_first(
    tmp_path: Path,
) -> None:
    ours, theirs = diverge(tmp_path, 1, 1)
    first = merge(ours, theirs.head() or "")
    theirs.append("theirs", {"i": 9}, actor="bo", time=3100.0)  # theirs moves on again
    ours.append("ours", {"i": 9}, actor="ana", time=2100.0)
    second = merge(ours, theirs.head() or "")
    events = ours.events()
    position = {e.id: i for i, e in enumerate(events)}
    assert len(position) == len(events) == 8
    for e in events:
        assert all(position[p] < position[e.id] for p in e.parents)
    assert events[-1] == second and first in events
    # after the second merge, our event 9 comes before their second event
    kinds = [(e.kind, e.body.get("i")) for e in events]
    assert kinds.index(("ours", 9)) < kinds.index(("theirs", 9))
    assert [e.kind for e in ours.new_events(second.id, first.id)] == ["ours", "theirs", MERGE]


def test_a_merge_needs_two_histories_that_diverged(tmp_path: Path) -> None:
    ours, theirs = diverge(tmp_path, 1, 0)
    with pytest.raises(UsageError, match="have not diverged"):
        merge(ours, theirs.head() or "")
    with pytest.raises(UsageError, match="moved while it was being merged"):
        ours.merge(theirs.head() or "", theirs.head() or "", {}, actor="ana")
    with pytest.raises(UsageError, match="a merge is written by a pull"):
        ours.append(MERGE, {}, actor="ana")


def test_a_format_1_log_reads_and_verifies_as_before(tmp_path: Path) -> None:
    log = open_log(tmp_path / "cache")
    prev = None
    ids = []
    for seq in range(3):  # bytes as Tether wrote them before merges existed
        doc = {"tether": "record", "kind": "event", "format": 1, "links": [prev] if prev else [],
               "log": "registry", "seq": seq, "prev": prev, "event": "transition",
               "actor": "ana", "time": 1000.0 + seq, "body": {"n": seq}}  # fmt: skip
        prev = log.store.put_bytes(json.dumps(doc, separators=(",", ":")).encode())
        ids.append(prev)
    log.refs.set(log.ref, [prev or ""])
    assert log.verify().ok and [e.id for e in log.events()] == ids
    new = log.append("transition", {"n": 3}, actor="ana")
    raw = json.loads(log.store.read_bytes(new.id))
    assert raw["format"] == 1 and raw["prev"] == ids[-1] and "parents" not in raw
    # what a signature covers is unchanged for a one-parent event: its prev as the one parent
    assert json.loads(signed_bytes(new, "registry"))["parents"] == [ids[-1]]


def test_a_merge_signature_covers_both_parents(tmp_path: Path) -> None:
    ours, theirs = diverge(tmp_path, 1, 1)
    signed: list[bytes] = []
    m = ours.merge(ours.head() or "", theirs.head() or "", {}, actor="ana",
                   sign=lambda data: signed.append(data) or {"sig": "x"})  # fmt: skip
    assert signed == [signed_bytes(m, "registry")]
    assert json.loads(signed[0])["parents"] == [m.prev, m.merged]


def rewritten(log: EventLog, ev: Event, **changes: object) -> str:
    """A new object: ``ev``'s document with ``changes`` (so it hashes to its own id)."""
    doc = json.loads(log.store.read_bytes(ev.id))
    doc.update(changes)
    return str(log.store.put_bytes(json.dumps(doc).encode()))


def test_a_tampered_merge_event_is_caught(tmp_path: Path) -> None:
    ours, theirs = diverge(tmp_path)
    m = merge(ours, theirs.head() or "")
    doc = json.loads(ours.store.read_bytes(m.id))
    doc["body"] = {"remote": "elsewhere"}
    corrupt_object(ours.store, m.id, json.dumps(doc).encode())
    check = ours.verify()
    assert not check.ok and check.at_seq == m.seq and "was changed" in (check.problem or "")


def test_a_merge_made_by_hand_out_of_place_is_caught(tmp_path: Path) -> None:
    ours, theirs = diverge(tmp_path)
    m = merge(ours, theirs.head() or "")
    ours.refs.set(ours.ref, [rewritten(ours, m, seq=m.seq + 3)])  # not one past its parents
    problem = ours.verify().problem or ""
    assert "does not come right after its newer parent" in problem
    ours.refs.set(ours.ref, [rewritten(ours, m, event="model.transition")])
    assert "only log.merge events merge" in (ours.verify().problem or "")
    same = [m.prev, m.prev]
    ours.refs.set(ours.ref, [rewritten(ours, m, parents=same, links=same)])
    assert "names the same event twice" in (ours.verify().problem or "")
    ours.refs.set(ours.ref, [rewritten(ours, m, format=3)])
    assert "upgrade Tether" in (ours.verify().problem or "")


def test_a_missing_side_of_a_merge_is_reported(tmp_path: Path) -> None:
    ours, theirs = diverge(tmp_path)
    m = merge(ours, theirs.head() or "")
    ours.store.delete(m.merged or "")
    check = ours.verify()
    assert not check.ok and "missing from the cache" in (check.problem or "")
    assert not ours.is_ancestor(hash_bytes(b"never stored"), m.id)
