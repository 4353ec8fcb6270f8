"""An event log mirrored into git, so it travels with the repository and is pushed *atomically*
with the tags it explains.

Each event becomes a commit on ``refs/tether/events/NAME`` (an empty tree; the message carries
the event document byte for byte, so another clone rebuilds the same object ids), whose parents
are its parents' commits: a merge event is a two-parent commit. ``git push --atomic`` sends the
tags and the log together or not at all, and refuses a log that is not a fast-forward of the
remote's, so two people cannot both win the same label assignment.

A pull fetches the remote's refs into side refs (:func:`incoming`), never over local ones: what
arrives is checked (``sync.py``) before anything local moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import FormatError, UsageError
from tether.events.chain import Event, EventLog, parse
from tether.events.walk import edge_problem, order
from tether.gitio.repo import git, git_maybe
from tether.hashing import hash_bytes, is_object_id

ID_LINE = "id: "
EVENT_LINE = "event: "  # how a tag's message names the event behind it
INCOMING = "refs/tether/incoming/"
INCOMING_TAGS = INCOMING + "tags/"


def git_ref(name: str) -> str:
    return f"refs/tether/events/{name}"


def incoming(ref: str) -> str:
    """The side ref a pull fetches the remote's ``ref`` into."""
    return INCOMING + ref.removeprefix("refs/tether/").removeprefix("refs/")


def rev(root: Path, ref: str) -> str | None:
    """The object ``ref`` points at, or None."""
    out = git_maybe(root, "rev-parse", "--verify", "-q", ref)
    return out.decode().strip() if out else None


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


def record(root: Path, log: EventLog, event: Event, theirs: str | None = None) -> str:
    """Append ``event`` (just appended to ``log``) to its git mirror; the commit id. A merge
    event's second parent is ``theirs``, the commit that mirrors it (fetched by the pull)."""
    ref = git_ref(log.name)
    parent = rev(root, ref) or ""
    if parent and event_id(root, parent) != event.prev:
        raise UsageError(
            f"the git mirror of the {log.name} log ({ref}) does not end at this event's "
            f"predecessor: run `tether prompt pull` (or `tether model pull`) and try again"
        )
    parents = [parent] if parent else []
    if event.merged is not None:
        if theirs is None or event_id(root, theirs) != event.merged:
            raise UsageError(f"the merge event {event.id[:19]}… needs the commit of its second "
                             "parent: run the pull again")  # fmt: skip
        parents.append(theirs)
    data = log.store.read_bytes(event.id).decode()
    message = f"tether event {event.seq}: {event.kind}\n\n{ID_LINE}{event.id}\n{data}\n"
    tree = git(root, "mktree", stdin=b"").decode().strip()
    args = ["commit-tree", tree, *(a for p in parents for a in ("-p", p)), "-m", message]
    commit = git(root, *args, env=_env(event)).decode().strip()
    git(root, "update-ref", ref, commit, parent)
    return commit


def event_id(root: Path, commit: str) -> str | None:
    """The id of the event the mirror commit ``commit`` carries."""
    body = git(root, "log", "-1", "--format=%B", commit).decode()
    return next((ln[len(ID_LINE) :] for ln in body.split("\n") if ln.startswith(ID_LINE)), None)


@dataclass
class Arrived:
    """What a fetched mirror brought: its head event, and the commit of each new event."""

    head: str | None
    commits: dict[str, str] = field(default_factory=dict)


def import_events(root: Path, log: EventLog, commit: str) -> Arrived:
    """Store the events of the mirror ``commit`` that this clone lacks (each must hash to its
    id, and its commit's parents must mirror its own parents); nothing moves. A mirror that
    does not hold what it claims raises :class:`FormatError`."""
    ref = git_ref(log.name)
    mine = rev(root, ref)
    out = git(root, "log", "-z", "--format=%H%n%P%n%B", commit, *([f"^{mine}"] if mine else []))
    found: dict[str, tuple[str, list[str], bytes]] = {}  # commit -> event id, parents, bytes
    for entry in out.decode().split("\0"):
        lines = entry.strip("\n").split("\n")  # not splitlines: an event may hold U+2028
        if len(lines) < 2:
            continue
        sha, parents = lines[0], lines[1].split()
        rest = lines[2:]
        oid = next((ln[len(ID_LINE) :] for ln in rest if ln.startswith(ID_LINE)), "")
        at = rest.index(ID_LINE + oid) if oid else -1
        data = "\n".join(rest[at + 1 :]).encode() if oid else b""
        if not is_object_id(oid) or hash_bytes(data) != oid:
            raise FormatError(f"the remote's {ref}: commit {sha[:12]} does not carry an event "
                              "that matches its id")  # fmt: skip
        found[sha] = (oid, parents, data)
    arrived = Arrived(head=None)
    for sha, (oid, _, data) in found.items():
        log.store.put_bytes(data, oid)
        arrived.commits[oid] = sha
    log.store.barrier()
    ids = {sha: oid for sha, (oid, _, _) in found.items()}
    for oid, parents, _ in found.values():
        mirrored = [ids.get(p) or event_id(root, p) for p in parents]
        event = log.event(oid)
        if mirrored != list(event.parents):
            raise FormatError(f"the remote's {ref}: the commit of event {event.seq} "
                              f"({oid[:19]}…) does not mirror its parents")  # fmt: skip
    arrived.head = ids.get(commit) or event_id(root, commit)
    return arrived


def read_from_git(root: Path, name: str, tip: str | None = None) -> list[Event]:
    """The events of log ``name`` as its git mirror holds them (or as commit ``tip`` would
    make it: a push being received), in fold order (merges included: every commit, not only
    the first-parent line), each checked against its id and linked to its parents
    (FormatError otherwise): what a reader that has no Tether workspace (a service reading a
    mirror, a server receiving a push) can trust as the log."""
    ref = git_ref(name)
    tip = tip or rev(root, ref)
    if tip is None:
        return []
    out = git(root, "log", "-z", "--format=%H%n%B", tip).decode()
    found: dict[str, Event] = {}
    head: str | None = None
    for entry in out.split("\0"):
        lines = entry.strip("\n").split("\n")  # not splitlines: an event may hold U+2028
        oid = next((ln[len(ID_LINE) :] for ln in lines if ln.startswith(ID_LINE)), None)
        if oid is None:
            continue
        data = "\n".join(lines[lines.index(ID_LINE + oid) + 1 :]).encode()
        event = parse(data, oid, name)
        found[oid] = event
        if lines[0] == tip:
            head = oid
    for event in found.values():
        for parent in event.parents:
            problem = (
                edge_problem(event, found[parent]) if parent in found else "a parent is missing"
            )
            if problem is not None:
                raise FormatError(f"{ref}: the event {event.id[:19]}… does not follow its "
                                  f"parents ({problem})")  # fmt: skip
        seqs = [found[p].seq for p in event.parents]
        if event.merged is not None and max(seqs) != event.seq - 1:
            raise FormatError(f"{ref}: the merge event {event.seq} does not come right after "
                              "its newer parent")  # fmt: skip
    return order(found, head)


def push(
    root: Path,
    remote: str,
    refs: list[str],
    leases: dict[str, str | None],
    env: dict[str, str] | None = None,
) -> None:
    """Send ``refs`` (tags, the log's mirror) and ``leases`` (blob refs: the signed head, a
    checkpoint; each replaced only when the remote still holds what this clone last fetched,
    None: nothing) in one atomic git push: all or none, and refused when a log on the remote
    has moved on (not a fast-forward). ``env``: git's environment (the door reads who pushes
    from it when the server pushes into its own repository)."""
    lease = [f"--force-with-lease={r}:{old or ''}" for r, old in leases.items()]
    specs = [f"{r}:{r}" for r in [*refs, *leases]]
    git(root, "push", "--atomic", "--quiet", *lease, remote, *specs, env=env)
    for ref in [*refs, *leases]:  # what the remote holds now: the next push's lease
        value = rev(root, ref) if ref.startswith("refs/tether/") else None
        if value:
            git(root, "update-ref", incoming(ref), value)


def fetch(root: Path, remote: str, refs: list[str]) -> dict[str, str | None]:
    """Fetch the remote's tags and ``refs`` into side refs (:func:`incoming`), never over this
    clone's own; what each side ref now holds (None: the remote has no such ref). git's
    errors (an unknown remote, a refused connection) raise whole."""
    listed = git(root, "ls-remote", remote, *refs).decode()
    have = {line.split("\t")[1] for line in listed.splitlines() if "\t" in line}
    specs = [f"+{r}:{incoming(r)}" for r in refs if r in have]
    git(root, "fetch", "--quiet", "--no-tags", "--prune", remote,
        f"+refs/tags/*:{INCOMING_TAGS}*", *specs)  # fmt: skip
    out: dict[str, str | None] = {}
    for ref in refs:
        if ref not in have and rev(root, incoming(ref)) is not None:
            git(root, "update-ref", "-d", incoming(ref))
        out[ref] = rev(root, incoming(ref))
    return out


def tag_events(root: Path, prefix: str) -> dict[str, tuple[str, str | None]]:
    """The tags under ``prefix``: name -> (object, the event their message names, if any)."""
    out = git_maybe(root, "for-each-ref", "--format=%(refname)%00%(objectname)%00%(contents)%00%00",
                    prefix)  # fmt: skip
    found: dict[str, tuple[str, str | None]] = {}
    for rec in (out or b"").decode("utf-8", "replace").split("\0\0"):
        name, _, rest = rec.strip("\n").partition("\0")
        if not name:
            continue
        obj, _, message = rest.partition("\0")
        event = next(
            (ln[len(EVENT_LINE) :] for ln in message.splitlines() if ln.startswith(EVENT_LINE)),
            None,
        )
        found[name.removeprefix(prefix)] = (obj, event)
    return found
