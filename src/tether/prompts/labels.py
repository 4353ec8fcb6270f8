"""Labels (``production``, ``staging``…) on registered prompt versions, GTO-style.

Assigning a label is an annotated git tag ``NAME#LABEL#N`` (the N-th assignment of that label) on
the commit of the version's registration tag, *and* an event in the ``prompts`` hash-chained log
(who, when, which version and content, which eval run), mirrored into git as
``refs/tether/events/prompts``. The label's current version is its highest N. Tags and the log
check each other: a tag deleted, moved or made by hand is reported (``problems``).
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether.events import EventLog
from tether.events.gitmirror import record
from tether.gitio.repo import committer_email, git, git_maybe
from tether.prompts.registry import check_unchanged
from tether.prompts.templates import Prompt, PromptError
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

LOG = "prompts"
LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
ASSIGN = "label.assign"


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


def event_log(ws: Workspace) -> EventLog:
    return EventLog(ws.store, ws.refs, LOG, ws.dot / "locks", redactor=redactor_for(ws))


def _check_label(label: str) -> None:
    if not LABEL.match(label):
        raise PromptError(f"{label!r} is not a label (lower-case letters, digits, - and _)")


def assignments(ws: Workspace, name: str, label: str | None = None) -> list[Assignment]:
    """Every assignment of ``name``'s labels from the event log, oldest first."""
    ws.store.create()
    out = []
    for ev in event_log(ws).events():
        body = ev.body
        if ev.kind != ASSIGN or body.get("prompt") != name:
            continue
        if label is not None and body.get("label") != label:
            continue
        out.append(
            Assignment(
                name,
                str(body["label"]),
                int(body["n"]),
                str(body["version"]),
                str(body["content_id"]),
                ev.actor,
                ev.time,
                body.get("eval_run"),
                ev.id,
                str(body.get("reason", "promote")),
                str(body.get("commit", "")),
            )
        )
    return out


def current(ws: Workspace, name: str, label: str) -> Assignment | None:
    found = assignments(ws, name, label)
    return max(found, key=lambda a: a.n) if found else None


def promote(
    ws: Workspace,
    prompt: Prompt,
    label: str,
    *,
    eval_run: str | None = None,
    reason: str = "promote",
    actor: str | None = None,
) -> Assignment:
    """Assign ``label`` to a registered, unchanged version: the next tag and the next event."""
    _check_label(label)
    known = check_unchanged(ws.root, prompt)
    if known is None:
        raise PromptError(
            f"{prompt.ref} is not registered: commit it and run `tether prompt register "
            f"{prompt.ref}` first (a label must point at content that cannot change)"
        )
    problems = check(ws, prompt.name)
    if problems:
        raise PromptError("; ".join(problems) + ": fix this before assigning labels")
    n = max((a.n for a in assignments(ws, prompt.name, label)), default=0) + 1
    tag = f"{prompt.name}#{label}#{n}"
    log = event_log(ws)
    body: dict[str, Any] = {
        "prompt": prompt.name,
        "label": label,
        "n": n,
        "version": prompt.version,
        "content_id": prompt.content_id,
        "commit": known.commit,
        "tag": tag,
        "eval_run": eval_run,
        "reason": reason,
    }
    who = actor or _actor(ws.root)
    ev = log.append(ASSIGN, body, actor=who)
    record(ws.root, log, ev)
    message = (
        f"{reason} {label} -> {prompt.ref}\n\nversion: {prompt.version}\n"
        f"content: {prompt.content_id}\nevent: {ev.id}\n"
        + (f"eval: {eval_run}\n" if eval_run else "")
    )
    git(ws.root, "tag", "-a", tag, "-m", message, known.commit)
    return Assignment(
        prompt.name, label, n, prompt.version, prompt.content_id, who, ev.time, eval_run, ev.id,
        reason, known.commit,
    )  # fmt: skip


def rollback(ws: Workspace, name: str, label: str, load: Any) -> Assignment:
    """Give ``label`` back the version it had before the current one, as a new assignment.
    ``load(version)`` reads that version (it must still be registered and unchanged)."""
    found = sorted(assignments(ws, name, label), key=lambda a: a.n)
    if not found:
        raise PromptError(f"{name} has never had the label {label!r}")
    now = found[-1].version
    # a version a rollback moved away from is not a target again: two rollbacks go two steps
    # back instead of swapping the same two versions
    undone = {found[i - 1].version for i, a in enumerate(found) if a.reason == "rollback" and i > 0}
    before = next(
        (a for a in reversed(found) if a.version != now and a.version not in undone), None
    )
    if before is None:
        raise PromptError(f"{name}#{label} has only ever pointed at {now}: nothing to roll back to")
    return promote(ws, load(before.version), label, reason="rollback", eval_run=before.eval_run)


def check(ws: Workspace, name: str) -> list[str]:
    """Tags and log disagreeing: an assignment's tag deleted or moved, a tag with no event."""
    tags = _label_tags(ws.root, name)
    problems = []
    logged = set()
    for a in assignments(ws, name):
        tag = f"{name}#{a.label}#{a.n}"
        logged.add(tag)
        found = tags.get(tag)
        if found is None:
            problems.append(f"tag {tag} ({a.version}) is in the event log but was deleted from git")
        elif found[1] != a.event or found[0] != a.commit:
            problems.append(f"tag {tag} was moved or re-made by hand (the log says {a.version})")
    for tag in sorted(set(tags) - logged):
        problems.append(f"tag {tag} has no event in the log: it was made by hand")
    return problems


def _label_tags(root: Path, name: str) -> dict[str, tuple[str, str | None]]:
    """``NAME#LABEL#N`` tags -> (the commit they point at, the event their message names)."""
    out = git_maybe(
        root,
        "for-each-ref",
        "--format=%(refname:strip=2)%00%(*objectname)%(objectname)%00%(contents)%00%00",
        f"refs/tags/{name}#*",
    )
    found: dict[str, tuple[str, str | None]] = {}
    for rec in (out or b"").decode("utf-8", "replace").split("\0\0"):
        tag, _, rest = rec.strip("\n").partition("\0")
        if not tag:
            continue
        commit, _, message = rest.partition("\0")
        event = next(
            (ln[len("event: ") :] for ln in message.splitlines() if ln.startswith("event: ")),
            None,
        )
        found[tag] = (commit[:40], event)
    return found


def _actor(root: Path) -> str:
    """Who assigns: the e-mail git would commit as (GIT_COMMITTER_EMAIL, then user.email), else
    the login name (identity by key comes with the registry's signed events)."""
    return committer_email(root) or getpass.getuser()


def version_for(ws: Workspace, name: str, at: str) -> str:
    """``at`` as a version: itself when it is one, else a label's current version."""
    if at.startswith("v") and at[1:2].isdigit():
        return at
    _check_label(at)
    found = current(ws, name, at)
    if found is None:
        raise PromptError(
            f"{name} has no label {at!r}: `tether prompt promote {name}@VERSION "
            f"--label {at}` assigns it"
        )
    return found.version
