import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corrupt_object
from tether.errors import FormatError, MissingObjectError, UsageError
from tether.events import Event, EventLog
from tether.hashing import hash_bytes
from tether.objects.graph import RECORD_HEADER, children, reachable
from tether.objects.refs import RefStore
from tether.objects.store import ObjectStore


def open_log(root: Path, name: str = "registry", refs: str = "refs") -> EventLog:
    """A log over a store in ``root``, laid out as ``.tether`` is; ``refs`` names the ref folder."""
    store = ObjectStore(root)
    store.create()
    return EventLog(store, RefStore(root / refs), name, root / "locks")


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return open_log(tmp_path / "cache")


def fill(log: EventLog, n: int) -> list[Event]:
    return [log.append("transition", {"n": i}, actor="ana", time=1000.0 + i) for i in range(n)]


def rewrite(log: EventLog, event: Event, **changes: object) -> None:
    """Change an event object's bytes on disk (still a well-formed event), as tampering would."""
    doc = json.loads(log.store.read_bytes(event.id))
    doc.update(changes)
    corrupt_object(log.store, event.id, json.dumps(doc).encode())


def forge(log: EventLog, event: Event, **changes: object) -> str:
    """A new object: ``event``'s document with ``changes``, which hashes to its own id."""
    doc = json.loads(log.store.read_bytes(event.id))
    doc.update(changes)
    return str(log.store.put_bytes(json.dumps(doc).encode()))


def test_events_come_back_oldest_first_linked_by_prev(log: EventLog) -> None:
    assert log.head() is None and log.events() == []
    before = time.time()
    first = log.append("register", {"model": "churn", "tags": ("a", "b")}, actor="ana")
    rest = fill(log, 2)
    events = log.events()
    assert events == [first, *rest]
    assert [e.seq for e in events] == [0, 1, 2]
    assert [e.prev for e in events] == [None, first.id, rest[0].id]
    assert log.head() == rest[-1].id
    assert first.kind == "register" and first.actor == "ana" and first.time >= before
    assert first.body == {"model": "churn", "tags": ["a", "b"]}  # as JSON holds it
    assert rest[1].time == 1001.0


def test_events_are_records_that_gc_and_push_follow_to_the_first(log: EventLog) -> None:
    events = fill(log, 4)
    data = log.store.read_bytes(events[-1].id)
    assert data.startswith(RECORD_HEADER)
    assert children(data, events[-1].id) == [events[-2].id]
    assert children(log.store.read_bytes(events[0].id), events[0].id) == []
    assert reachable(log.store, [("events", events[-1].id)]).ids == {e.id for e in events}


def test_an_intact_chain_verifies(log: EventLog) -> None:
    assert log.verify().ok and log.verify().count == 0
    fill(log, 5)
    check = log.verify()
    assert check.ok and check.count == 5
    assert check.problem is None and check.at_seq is None


def test_a_changed_event_is_reported_at_its_seq(log: EventLog) -> None:
    events = fill(log, 5)
    rewrite(log, events[2], body={"n": 99})
    check = log.verify()
    assert not check.ok and check.at_seq == 2
    assert check.problem and check.problem.startswith("event 2 ")
    assert "no longer match its id" in check.problem
    with pytest.raises(FormatError, match=r"registry is broken: event 2 .*tether audit verify"):
        log.events()


def test_the_oldest_of_several_problems_is_reported(log: EventLog) -> None:
    events = fill(log, 6)
    rewrite(log, events[4], actor="mallory")
    corrupt_object(log.store, events[1].id)  # bytes that are not even JSON
    check = log.verify()
    assert check.at_seq == 1 and check.count == 4  # events 5 down to 2 read
    assert check.problem and "event 1" in check.problem


def test_a_changed_head_is_reported_and_not_extended(log: EventLog) -> None:
    events = fill(log, 3)
    rewrite(log, events[2], body={"stage": "production"})
    assert log.verify().at_seq == 2
    with pytest.raises(FormatError, match=r"the head event .* was changed"):
        log.append("approve", {}, actor="ana")
    assert log.head() == events[2].id


def test_a_missing_middle_event_is_reported(log: EventLog) -> None:
    events = fill(log, 5)
    log.store.delete(events[2].id)
    check = log.verify()
    assert not check.ok and check.at_seq == 2 and check.count == 2
    assert check.problem and "event 2" in check.problem and "missing" in check.problem
    with pytest.raises(FormatError, match="missing from the cache"):
        log.events()


def test_a_head_ref_on_something_else_is_reported(log: EventLog) -> None:
    blob = log.store.put_bytes(b"not an event")
    log.refs.set(log.ref, [blob])
    check = log.verify()
    assert not check.ok and check.at_seq is None
    assert check.problem == f"the head event ({blob[:19]}…) is not JSON"
    run = log.store.put_bytes(b'{"tether":"record","kind":"run","format":1,"links":[]}')
    log.refs.set(log.ref, [run])
    assert "is not an event record" in (log.verify().problem or "")
    with pytest.raises(FormatError, match=r"is not an event record.*tether audit verify"):
        log.events()


def test_a_corrupt_head_ref_is_reported(log: EventLog) -> None:
    a, b = fill(log, 2)
    (log.refs.root / log.ref).write_text("garbage\n")
    check = log.verify()
    assert not check.ok and check.count == 0
    assert check.problem and "head ref events/registry is corrupt" in check.problem
    with pytest.raises(FormatError, match=r"is corrupt.*tether audit verify"):
        log.head()
    log.refs.set(log.ref, [a.id, b.id])
    assert "holds 2 ids" in (log.verify().problem or "")


def test_a_seq_gap_is_reported(log: EventLog) -> None:
    events = fill(log, 4)
    log.refs.set(log.ref, [forge(log, events[3], seq=5)])  # events 3 and 4 left out
    check = log.verify()
    assert not check.ok and check.at_seq == 3
    assert check.problem == "event 5 links to event 2 instead of event 4: the chain has a gap"


def test_an_event_of_another_log_is_refused(tmp_path: Path) -> None:
    prompts = open_log(tmp_path / "cache", "prompts")
    registry = open_log(tmp_path / "cache", "registry")
    fill(prompts, 2)
    registry.refs.set(registry.ref, [prompts.head() or ""])
    assert "belongs to the event log 'prompts'" in (registry.verify().problem or "")
    assert prompts.verify().ok


def test_fast_forward_and_divergence(tmp_path: Path) -> None:
    log = open_log(tmp_path / "cache")
    fill(log, 2)
    a = log.head()
    fill(log, 2)
    b = log.head()
    assert a and b
    assert log.is_ancestor(a, b) and log.is_ancestor(b, b) and log.is_ancestor(None, b)
    assert not log.is_ancestor(b, a) and not log.is_ancestor(a, None)
    assert log.contains(a) and log.contains(None)
    assert not log.is_ancestor(hash_bytes(b"never stored"), b)
    # another clone's refs over the same objects: it had `a`, then recorded its own event
    other = open_log(tmp_path / "cache", refs="refs-other")
    assert other.advance(a) and other.head() == a
    c = other.append("reject", {"reason": "drift"}, actor="bo").id
    assert log.is_ancestor(a, c) and not log.is_ancestor(b, c) and not log.is_ancestor(c, b)
    assert not log.contains(c)
    with pytest.raises(UsageError, match=r"diverged.*a pull merges the two"):
        log.advance(c)
    assert log.head() == b
    assert not log.advance(a)  # already contained: nothing moves
    behind = open_log(tmp_path / "cache", refs="refs-behind")
    behind.advance(a)
    assert behind.advance(b) and behind.events() == log.events()
    with pytest.raises(MissingObjectError, match="fetch the events"):
        behind.advance(hash_bytes(b"never stored"))


def test_advance_refuses_a_broken_chain(tmp_path: Path) -> None:
    log = open_log(tmp_path / "cache")
    events = fill(log, 3)
    other = open_log(tmp_path / "cache", refs="refs-other")
    log.store.delete(events[1].id)
    with pytest.raises(FormatError, match=r"event 1 .* missing"):
        other.advance(events[2].id)
    assert other.head() is None


def test_a_chain_fetched_into_a_pack_reads_verifies_and_fast_forwards(tmp_path: Path) -> None:
    mine = open_log(tmp_path / "mine")
    events = fill(mine, 3)
    clone = open_log(tmp_path / "clone")
    with clone.store.pack_writer(threshold=65536) as writer:  # as a pull brings small objects
        for event in events:
            writer.add(event.id, mine.store.read_bytes(event.id))
    assert clone.store.loose_path(events[0].id) is None
    assert clone.advance(events[-1].id)
    assert clone.events() == events and clone.verify().ok
    corrupt_object(clone.store, events[1].id)
    assert clone.verify().at_seq == 1


def test_secrets_are_masked_before_sealing(log: EventLog) -> None:
    event = log.append(
        "policy.change",
        {
            "url": "postgres://u:pw@h/db",
            "deploy": {"password": "hunter2", "hosts": ["a", "b"]},
            "steps": ["export API_TOKEN=abc123def"],
        },
        actor="ci with Bearer abcdefghijklmnop",
    )
    assert event.body == {
        "url": "postgres://u:***@h/db",
        "deploy": {"password": "***", "hosts": ["a", "b"]},
        "steps": ["export API_TOKEN=***"],
    }
    assert event.actor == "ci with Bearer ***"
    raw = log.store.read_bytes(event.id)
    for secret in (b":pw@", b"hunter2", b"abc123def", b"abcdefghijklmnop"):
        assert secret not in raw
    assert log.events() == [event]


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("Approve!", {}, "not an event kind"),
        ("approve", {"when": {1, 2}}, r"body\.when is a set"),
        ("approve", {"score": float("nan")}, "finite numbers only"),
        ("approve", {1: "x"}, "keys are strings"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    log: EventLog, kind: str, body: dict[Any, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        log.append(kind, body, actor="ana")
    assert log.head() is None and list(log.store.iter_ids()) == []


def test_a_bad_log_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not an event log name"):
        open_log(tmp_path / "cache", "../escape")


WRITER = """
import sys, time
from pathlib import Path
from typing import Any
from tether.events import EventLog
from tether.objects.refs import RefStore
from tether.objects.store import ObjectStore

root, who = Path(sys.argv[1]), sys.argv[2]
log = EventLog(ObjectStore(root), RefStore(root / "refs"), "registry", root / "locks")
(root / f"ready-{who}").touch()
while not (root / "go").exists():
    time.sleep(0.001)
for i in range(50):
    log.append("transition", {"n": i}, actor=who)
    time.sleep(0.002)  # let the other writer in (file_lock polls; a tight loop would starve it)
"""


def test_two_processes_appending_at_once_both_land_without_a_fork(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    log = open_log(root)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), who],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        for who in ("w1", "w2")
    ]
    deadline = time.monotonic() + 60
    while not all((root / f"ready-{who}").exists() for who in ("w1", "w2")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in writers)
        time.sleep(0.01)
    (root / "go").touch()  # both start appending at once
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    events = log.events()
    assert [e.seq for e in events] == list(range(100))
    assert log.verify().ok and log.verify().count == 100
    for who in ("w1", "w2"):
        assert [e.body["n"] for e in events if e.actor == who] == list(range(50))
    assert len(list(log.store.iter_ids())) == 100  # no event was written off the chain
