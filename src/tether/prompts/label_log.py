"""Which label assignments hold: the ``prompts`` log folded as the registry's log is.

A ``trust.root`` event puts a root of trust in force (the same root the registry's log carries);
under it a ``label.assign`` counts only when its envelope is signed by a key that holds the
``promoter`` role at that point of the log, for the identity the event names
(:func:`tether.events.trusted.check_signed`). Without a root, assignments are recorded and
counted, as a project without a root records but does not guard. Each (prompt, label) takes
assignment numbers 1, 2, 3… in order: an event that claims a number already taken, or skips one,
is refused (two people cannot both win assignment N). Refused events are named, never applied.

A label tag ``NAME#LABEL#N`` is served only when it is *backed*: the newest assignment that holds
has the same N, and the tag names that event, that version and that content (:func:`backing`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether.errors import TrustError
from tether.events.chain import Event
from tether.events.trusted import ROOT_EVENT, Untrusted, check_signed, next_root
from tether.prompts.registry import tag_field
from tether.prompts.templates import PromptError
from tether.trust import pin
from tether.trust import root as trust

LOG = "prompts"
ASSIGN = "label.assign"
PAYLOAD_TYPE = "application/vnd.tether.prompts-event+json"
ROLES = frozenset({"promoter"})  # an admin who promotes gives their key the role in the root
MERGE = "log.merge"
MERGE_ROLES = frozenset({"promoter", "approver", "ci", "admin"})  # who may join two histories


@dataclass(frozen=True)
class Assignment:
    name: str
    label: str
    n: int
    version: str
    content_id: str
    actor: str
    time: float
    eval_run: str | None
    event: str
    reason: str  # "promote" or "rollback"
    commit: str  # where the tag points: the version's registration commit


@dataclass(frozen=True)
class Refusal:
    """An event of the prompts log that was not applied, and why."""

    event: str
    seq: int
    kind: str
    actor: str
    prompt: str | None  # the prompt it names, when it names one
    why: str

    def __str__(self) -> str:
        of = f" of {self.prompt}" if self.prompt is not None else ""
        return f"event {self.seq} ({self.kind}{of} by {self.actor}) was not applied: {self.why}"


@dataclass
class Folded:
    """The log read: the root in force at its end, the assignments that hold (oldest first),
    and each refused event with why."""

    root: trust.TrustRoot | None = None
    held: list[Assignment] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    taken: dict[tuple[str, str], int] = field(default_factory=dict)  # highest N claimed

    def of(self, name: str, label: str | None = None) -> list[Assignment]:
        return [a for a in self.held if a.name == name and label in (None, a.label)]

    def current(self, name: str, label: str) -> Assignment | None:
        found = self.of(name, label)
        return max(found, key=lambda a: a.n) if found else None


def fold(events: Iterable[Event]) -> Folded:
    out = Folded()
    for ev in events:
        try:
            if ev.kind == ROOT_EVENT:
                out.root = next_root(out.root, ev)
                continue
            if ev.kind == MERGE:  # two histories joined: both sides are folded already
                if out.root is not None:
                    check_signed(out.root, ev, LOG, PAYLOAD_TYPE, MERGE_ROLES)
                continue
            if ev.kind != ASSIGN:
                if out.root is not None:
                    raise Untrusted(f"{ev.kind} is not a prompts event this Tether knows")
                continue
            if out.root is not None:
                check_signed(out.root, ev, LOG, PAYLOAD_TYPE, ROLES)
            a = _assignment(ev)
            key = (a.name, a.label)
            out.taken[key] = max(out.taken.get(key, 0), a.n)
            expected = 1 + max((h.n for h in out.of(a.name, a.label)), default=0)
            if a.n != expected:
                raise Untrusted(
                    f"it claims assignment {a.n} of {a.name}#{a.label}, but the next one is "
                    f"{expected}"
                )
            out.held.append(a)
        except Untrusted as exc:
            out.refusals.append(_refusal(ev, str(exc)))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            out.refusals.append(_refusal(ev, f"it is malformed ({type(exc).__name__}: {exc})"))
    return out


def _refusal(ev: Event, why: str) -> Refusal:
    name = ev.body.get("prompt")
    return Refusal(ev.id, ev.seq, ev.kind, ev.actor, name if isinstance(name, str) else None, why)


def _assignment(ev: Event) -> Assignment:
    b: dict[str, Any] = ev.body
    n = b["n"]
    if type(n) is not int or n < 1:
        raise ValueError(f"n is {n!r}")
    texts = [b["prompt"], b["label"], b["version"], b["content_id"], b["commit"]]
    if not all(isinstance(t, str) and t for t in texts):
        raise TypeError("prompt, label, version, content_id and commit are texts")
    eval_run = b.get("eval_run")
    return Assignment(
        b["prompt"], b["label"], n, b["version"], b["content_id"], ev.actor, ev.time,
        eval_run if isinstance(eval_run, str) else None, ev.id, str(b.get("reason", "promote")),
        b["commit"],
    )  # fmt: skip


def check_pin(folded: Folded, dot: Path | None, *, record: bool = True) -> None:
    """Hold the log's root to what this clone pinned (``dot``: its .tether; None for a reader
    without one, held to ``TETHER_ROOT_KEY`` when it is set): a log whose root is not the pinned
    one, or that had a root and now has none, is refused (TrustError)."""
    if folded.root is None and not folded.held and not folded.refusals:
        return  # an empty log (not fetched yet, or never used) serves nothing
    fp = folded.root.fingerprint if folded.root is not None else None
    version = folded.root.version if folded.root is not None else 0
    if dot is not None and dot.is_dir():
        pin.check(dot, fp, version, record=record)
        return
    wanted = os.environ.get(pin.ROOT_ENV)
    if wanted and wanted != fp:
        raise TrustError(
            f"the prompts log's root of trust ({fp or 'none'}) is not the one {pin.ROOT_ENV} "
            f"names ({wanted}): refusing to serve its labels"
        )


def backing(folded: Folded, name: str, label: str, tags: dict[str, tuple[str, str]]) -> Assignment:
    """The assignment that backs ``name``'s newest ``label`` tag (``tags``: tag name -> (commit,
    message)); PromptError, naming `tether prompt history`, when the tag and the log disagree."""
    prefix = f"{name}#{label}#"
    numbers = [int(t[len(prefix) :]) for t in tags if t.startswith(prefix) and _is_n(t, prefix)]
    held = folded.current(name, label)
    if not numbers and held is None:
        raise PromptError(
            f"{name} has no label {label!r}: `tether prompt promote {name}@VERSION --label "
            f"{label}` assigns it"
        )
    newest = max(numbers, default=0)
    tag = f"{prefix}{newest}"
    see = f"`tether prompt history {name}` shows the log"
    if held is None:
        raise PromptError(
            f"tag {tag} is not backed by any assignment in the prompts log: it was made by "
            f"hand, or its log was not fetched; refusing to serve it ({see})"
        )
    if newest != held.n:
        raise PromptError(
            f"the newest tag of {name}#{label} is {tag}, but the newest assignment in the "
            f"prompts log is #{held.n} ({held.version}): refusing to serve a label the log does "
            f"not back ({see}; `tether prompt pull` fetches both)"
        )
    commit, message = tags[tag]
    said = {k: tag_field(message, f"{k}: ") for k in ("version", "content", "event")}
    if (commit, said["version"], said["content"], said["event"]) != (
        held.commit, held.version, held.content_id, held.event
    ):  # fmt: skip
        raise PromptError(
            f"tag {tag} does not match assignment #{held.n} in the prompts log (which says "
            f"{held.version}, content {held.content_id[:19]}…): it was moved or re-made by "
            f"hand; refusing to serve it ({see})"
        )
    return held


def _is_n(tag: str, prefix: str) -> bool:
    rest = tag[len(prefix) :]
    return rest.isascii() and rest.isdigit()
