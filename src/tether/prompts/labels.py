"""Labels (``production``, ``staging``…) on registered prompt versions, GTO-style.

Assigning a label is an annotated git tag ``NAME#LABEL#N`` (the N-th assignment of that label) on
the commit of the version's registration tag, *and* a ``label.assign`` event in the ``prompts``
hash-chained log (who, when, which version and content, which eval run on which suite), mirrored
into git as ``refs/tether/events/prompts``. What holds is the log's (:mod:`label_log`: under a
root of trust, signed by a promoter's key); a tag serves only when an assignment backs it, and a
tag deleted, moved or made by hand is reported (``check``). Assignments are serialised by a lock,
a tag is never forced, and a logged assignment whose tag is missing gets it back at the next
promote.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path
from typing import Any

from tether.events import EventLog
from tether.events.gitmirror import record
from tether.events.trusted import local_key
from tether.gitio.repo import committer_email, git, git_maybe
from tether.objects.lock import file_lock
from tether.prompts import label_log
from tether.prompts.label_log import ASSIGN, LOG, Assignment
from tether.prompts.registry import annotated_tags, check_unchanged
from tether.prompts.templates import Prompt, PromptError
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
__all__ = ["ASSIGN", "LOG", "Assignment"]


def event_log(ws: Workspace) -> EventLog:
    return EventLog(ws.store, ws.refs, LOG, ws.dot / "locks", redactor=redactor_for(ws))


def _check_label(label: str) -> None:
    if not LABEL.match(label):
        raise PromptError(f"{label!r} is not a label (lower-case letters, digits, - and _)")


def read(ws: Workspace) -> label_log.Folded:
    """The prompts log folded (what holds, what was refused), held to this clone's pin."""
    ws.store.create()
    folded = label_log.fold(event_log(ws).events())
    label_log.check_pin(folded, ws.dot)
    return folded


def assignments(ws: Workspace, name: str, label: str | None = None) -> list[Assignment]:
    """Every assignment of ``name``'s labels that holds, oldest first."""
    return read(ws).of(name, label)


def current(ws: Workspace, name: str, label: str) -> Assignment | None:
    return read(ws).current(name, label)


def promote(
    ws: Workspace,
    prompt: Prompt,
    label: str,
    *,
    eval_run: str | None = None,
    reason: str = "promote",
    actor: str | None = None,
    suite_id: str | None = None,
) -> Assignment:
    """Assign ``label`` to a registered, unchanged version: the next event, then its tag. Under a
    root of trust the event is signed by the local key, which must hold ``promoter``; nothing is
    written otherwise."""
    _check_label(label)
    known = check_unchanged(ws.root, prompt)
    if known is None:
        raise PromptError(
            f"{prompt.ref} is not registered: commit it and run `tether prompt register "
            f"{prompt.ref}` first (a label must point at content that cannot change)"
        )
    with file_lock(ws.dot / "locks" / "prompts-labels.lock", exclusive=True, timeout=30):
        folded = read(ws)
        _repair_tags(ws, folded, prompt.name)
        problems = check(ws, prompt.name, folded)
        if problems:
            raise PromptError("; ".join(problems) + ": fix this before assigning labels")
        tags = _label_tags(ws.root, prompt.name)
        prefix = f"{prompt.name}#{label}#"
        numbers = (t[len(prefix) :] for t in tags if t.startswith(prefix))
        made = [int(x) for x in numbers if x.isascii() and x.isdigit()]
        n = 1 + max([folded.taken.get((prompt.name, label), 0), *made])
        held = folded.current(prompt.name, label)
        if held is not None and n != held.n + 1:
            raise PromptError(
                f"{prompt.name}#{label} has assignment numbers past #{held.n} that the log does "
                f"not back: `tether prompt history {prompt.name}` shows them"
            )
        tag = f"{prefix}{n}"
        body: dict[str, Any] = {
            "prompt": prompt.name, "label": label, "n": n, "version": prompt.version,
            "content_id": prompt.content_id, "commit": known.commit, "tag": tag,
            "eval_run": eval_run, "reason": reason,
        }  # fmt: skip
        if suite_id is not None:  # the evidence the eval run gave, on this suite's content
            body["suite_content_id"] = suite_id
        log = event_log(ws)
        if folded.root is not None:
            signer, who = _promoter(folded.root)
            sign = lambda data: signer.sign(label_log.PAYLOAD_TYPE, data)  # noqa: E731
            ev = log.append(ASSIGN, body, actor=who, sign=sign)
        else:
            who = actor or _actor(ws.root)
            ev = log.append(ASSIGN, body, actor=who)
        record(ws.root, log, ev)
        a = label_log.Assignment(
            prompt.name, label, n, prompt.version, prompt.content_id, who, ev.time, eval_run,
            ev.id, reason, known.commit,
        )  # fmt: skip
        _tag(ws.root, a)
        return a


def _promoter(root: Any) -> tuple[Any, str]:
    """The local key, which must hold ``promoter`` in the root (TrustError, before anything is
    written, otherwise)."""
    signer, key = local_key(
        root,
        label_log.ROLES,
        "in this project a label assignment",
        "set TETHER_SIGNING_KEY to yours, or ask an admin (`tether trust add KEY.pub --identity "
        "YOU --role promoter`)",
    )
    return signer, key.identity


def _tag(root: Path, a: label_log.Assignment) -> None:
    """The assignment's tag, never forced: one that exists is an error (its number is taken)."""
    message = (
        f"{a.reason} {a.label} -> {a.name}@{a.version}\n\nversion: {a.version}\n"
        f"content: {a.content_id}\nevent: {a.event}\n"
        + (f"eval: {a.eval_run}\n" if a.eval_run else "")
    )
    git(root, "tag", "-a", f"{a.name}#{a.label}#{a.n}", "-m", message, a.commit)


def _repair_tags(ws: Workspace, folded: label_log.Folded, name: str) -> None:
    """Give each assignment that holds and lost its tag (a tag that failed, or was deleted) the
    tag its event says; a tag that exists is left for ``check`` to judge."""
    tags = _label_tags(ws.root, name)
    for a in folded.of(name):
        if f"{name}#{a.label}#{a.n}" not in tags:
            _tag(ws.root, a)


def rollback(
    ws: Workspace, name: str, label: str, load: Any, *, actor: str | None = None
) -> Assignment:
    """Give ``label`` back the version that was current when the current one was promoted, as a
    new assignment: promotions push, rollbacks pop. ``load(version)`` reads that version (it
    must still be registered and unchanged)."""
    found = sorted(assignments(ws, name, label), key=lambda a: a.n)
    if not found:
        raise PromptError(f"{name} has never had the label {label!r}")
    stack: list[Assignment] = []
    for a in found:
        if a.reason == "rollback" and stack:
            stack.pop()
        else:
            stack.append(a)
    if len(stack) < 2:
        first = stack[0].version if stack else found[0].version
        raise PromptError(
            f"{name}#{label} is at {found[-1].version}, and {first} was the label's first "
            "version: nothing to roll back to"
        )
    before = stack[-2]
    return promote(
        ws, load(before.version), label, reason="rollback", eval_run=before.eval_run, actor=actor
    )


def check(ws: Workspace, name: str, folded: label_log.Folded | None = None) -> list[str]:
    """Tags and log disagreeing: an assignment's tag deleted or moved, a tag with no event, and
    events of the log that were refused."""
    folded = folded or read(ws)
    tags = _label_tags(ws.root, name)
    problems = []
    logged = set()
    for a in folded.of(name):
        tag = f"{name}#{a.label}#{a.n}"
        logged.add(tag)
        found = tags.get(tag)
        if found is None:
            problems.append(f"tag {tag} ({a.version}) is in the event log but was deleted from git")
        elif found[1] != a.event or found[0] != a.commit:
            problems.append(f"tag {tag} was moved or re-made by hand (the log says {a.version})")
    for tag in sorted(set(tags) - logged):
        problems.append(f"tag {tag} has no event in the log: it was made by hand")
    problems += [str(r) for r in folded.refusals if r.prompt == name]
    return problems


def refused(ws: Workspace) -> list[str]:
    """Every event of the prompts log that was not applied, with why."""
    return [str(r) for r in read(ws).refusals]


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
    return label_log.backing(
        read(ws), name, at, annotated_tags(ws.root, f"refs/tags/{name}#{at}#*")
    ).version
