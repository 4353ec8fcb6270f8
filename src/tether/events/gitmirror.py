"""An event log mirrored into git, so it travels with the repository and is pushed *atomically*
with the tags it explains.

Each event becomes a commit on ``refs/tether/events/NAME`` (an empty tree; the message carries
the event document byte for byte, so another clone rebuilds the same object ids), whose parent is
the previous event's commit. git then does the rest: ``git push --atomic`` sends the tags and the
log head together or not at all, and refuses a log head that is not a fast-forward, so two people
cannot both win the same label assignment; a fetch refuses one too.
"""

from __future__ import annotations

import os
from pathlib import Path

from tether.errors import FormatError, UsageError
from tether.events.chain import Event, EventLog
from tether.gitio.repo import git, git_maybe
from tether.hashing import hash_bytes

ID_LINE = "id: "


def git_ref(name: str) -> str:
    return f"refs/tether/events/{name}"


def _env(event: Event) -> dict[str, str]:
    """A fixed identity and the event's own time: the same event makes the same commit."""
    when = f"{int(event.time)} +0000"
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "tether",
        "GIT_AUTHOR_EMAIL": "tether@localhost",
        "GIT_COMMITTER_NAME": "tether",
        "GIT_COMMITTER_EMAIL": "tether@localhost",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }


def record(root: Path, log: EventLog, event: Event) -> str:
    """Append ``event`` (just appended to ``log``) to its git mirror; the commit id."""
    ref = git_ref(log.name)
    parent = (git_maybe(root, "rev-parse", "--verify", "-q", ref) or b"").decode().strip()
    if parent and _event_id(root, parent) != event.prev:
        raise UsageError(
            f"the git mirror of the {log.name} log ({ref}) does not end at this event's "
            f"predecessor: run `tether prompt pull` (or `git fetch` the ref) and try again"
        )
    data = log.store.read_bytes(event.id).decode()
    message = f"tether event {event.seq}: {event.kind}\n\n{ID_LINE}{event.id}\n{data}\n"
    tree = git(root, "mktree", stdin=b"").decode().strip()
    args = ["commit-tree", tree, *(["-p", parent] if parent else []), "-m", message]
    commit = git(root, *args, env=_env(event)).decode().strip()
    git(root, "update-ref", ref, commit, parent or "")
    return commit


def _event_id(root: Path, commit: str) -> str | None:
    body = git(root, "log", "-1", "--format=%B", commit).decode()
    return next((ln[len(ID_LINE) :] for ln in body.splitlines() if ln.startswith(ID_LINE)), None)


def import_from_git(root: Path, log: EventLog) -> int:
    """Bring events that arrived on the git mirror (a fetch) into ``log``; how many. A mirror
    that does not extend the log is refused, as the log itself refuses it."""
    ref = git_ref(log.name)
    if git_maybe(root, "rev-parse", "--verify", "-q", ref) is None:
        return 0
    out = git(root, "log", "--format=%B%x00", "--first-parent", ref).decode()
    new: list[tuple[str, bytes]] = []
    for body in out.split("\0"):
        lines = body.strip("\n").splitlines()
        if len(lines) < 4 or not lines[2].startswith(ID_LINE):
            continue
        oid, data = lines[2][len(ID_LINE) :], "\n".join(lines[3:]).encode()
        if log.store.has(oid):
            break  # everything older is here already
        if hash_bytes(data) != oid:
            raise FormatError(f"{ref}: the event {oid[:19]}… in git does not match its id")
        new.append((oid, data))
    if not new:
        return 0
    for oid, data in reversed(new):
        log.store.put_bytes(data, oid)
    log.store.barrier()
    log.advance(new[0][0])
    return len(new)


def push(root: Path, remote: str, refs: list[str]) -> None:
    """Send ``refs`` (tags, the log's mirror, a signed head) in one atomic git push: all or
    none, and refused when a log on the remote has moved on (not a fast-forward)."""
    git(root, "push", "--atomic", "--quiet", remote, *(f"{r}:{r}" for r in refs))


def fetch(root: Path, remote: str, log: EventLog, extra: list[str]) -> int:
    """Fetch the tags, the log's mirror (fast-forward only) and ``extra`` refs the remote has,
    then take in the new events; how many arrived."""
    wanted = [git_ref(log.name), *extra]
    listed = (git_maybe(root, "ls-remote", remote, *wanted) or b"").decode()
    have = {line.split("\t")[1] for line in listed.splitlines() if "\t" in line}
    specs = [f"{r}:{r}" if r == git_ref(log.name) else f"+{r}:{r}" for r in wanted if r in have]
    git(root, "fetch", "--quiet", remote, "refs/tags/*:refs/tags/*", *specs)
    return import_from_git(root, log)


def read_from_git(root: Path, name: str) -> list[Event]:
    """The events of log ``name`` as its git mirror holds them, oldest first, each checked
    against its id and linked to the one before (FormatError otherwise): what a reader that
    has no Tether workspace (a service reading a mirror) can trust as the log."""
    from tether.events.chain import parse

    ref = git_ref(name)
    if git_maybe(root, "rev-parse", "--verify", "-q", ref) is None:
        return []
    out = git(root, "log", "--format=%B%x00", "--first-parent", "--reverse", ref).decode()
    events: list[Event] = []
    for body in out.split("\0"):
        lines = body.strip("\n").splitlines()
        if len(lines) < 4 or not lines[2].startswith(ID_LINE):
            continue
        ev = parse("\n".join(lines[3:]).encode(), lines[2][len(ID_LINE) :], name)
        if ev.prev != (events[-1].id if events else None):
            raise FormatError(f"{ref}: the event {ev.id[:19]}… does not follow the one before it")
        events.append(ev)
    return events
