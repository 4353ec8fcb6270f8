"""``tether audit``: the registry's event log, and its verification: the hash chain (every
event present, unchanged and in order), every signature (a trusted key, the event's own actor,
the signed payload equal to the event), and the signed head (nothing cut off the end)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tether.errors import TetherError
from tether.events import Event
from tether.registry.store import HEAD_REF, event_log, signed_head, verify_event
from tether.workspace.repo import Workspace


@dataclass
class Report:
    events: int
    problems: list[str] = field(default_factory=list)
    head_signed_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def log(ws: Workspace, model: str | None = None) -> list[Event]:
    events = event_log(ws).events()
    if model is None:
        return events
    return [e for e in events if e.body.get("name") == model]


def verify(ws: Workspace) -> Report:
    chain = event_log(ws)
    checked = chain.verify()
    report = Report(checked.count)
    if not checked.ok:
        report.problems.append(checked.problem or "the chain is broken")
        return report  # the signatures of a broken chain prove nothing
    events = chain.events()
    for ev in events:
        problem = verify_event(ws, ev)
        if problem:
            report.problems.append(problem)
    try:
        head = signed_head(ws)
    except TetherError as exc:
        report.problems.append(f"the signed head ({HEAD_REF}) does not verify: {exc}")
        return report
    signed = [e for e in events if e.body.get("signed") is not None]
    if head is None:
        if signed:
            report.problems.append(f"{HEAD_REF} is missing: the signed head was deleted")
        return report
    doc, report.head_signed_by = head
    ids = {e.id: e for e in events}
    if doc["head"] not in ids:
        report.problems.append(
            f"the signed head names event {doc['seq']} ({str(doc['head'])[:19]}…), which is not in "
            f"the log: the newest events were cut off (the log ends at {len(events) - 1})"
        )
    elif signed and ids[doc["head"]].seq < signed[-1].seq:
        report.problems.append(
            f"the signed head is older than the newest signed event ({signed[-1].seq}): it was "
            "replaced by an older one"
        )
    return report
