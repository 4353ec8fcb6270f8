"""``tether prompt push`` and ``pull``: a prompt's version and label tags and the ``prompts``
log through a git remote.

A push is one atomic git push, refused when the remote's log moved on (someone assigned a label
first). A pull (``events/sync.py``) fetches into side refs and checks what arrived before
anything local moves; two histories that both moved on are joined by a ``log.merge`` event,
unless both sides assigned the same label number (``NAME#LABEL#N``): that is refused, naming it,
with the way out (``--discard-local``).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable

from tether.errors import GitError, PromptError
from tether.events import Event, EventLog, gitmirror
from tether.events import sync as events_sync
from tether.events.sync import Candidate, Pulled, Refusal, Rules, Sign
from tether.events.trusted import local_key
from tether.gitio.repo import committer_email, git_maybe
from tether.prompts import label_log
from tether.prompts.labels import ASSIGN, LOG
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

COMMAND = "tether prompt pull"

Verify = Callable[[EventLog, Candidate], list[Refusal]]
Merger = Callable[[], tuple[str, Sign | None]]


def event_log(ws: Workspace) -> EventLog:
    return EventLog(ws.store, ws.refs, LOG, ws.dot / "locks", redactor=redactor_for(ws))


def push(ws: Workspace, name: str, remote: str) -> None:
    """Send ``name``'s version and label tags and the log in one atomic git push; git refuses
    it when the remote's log has moved on (pull first)."""
    try:
        gitmirror.push(ws.root, remote, *push_spec(ws, name))
    except GitError as exc:
        raise PromptError(
            f"push to {remote} refused: if someone else assigned a label first, `{COMMAND}` "
            f"takes their assignments (merging them with yours), then push again. {exc}"
        ) from None


def push_spec(ws: Workspace, name: str | None) -> tuple[list[str], dict[str, str | None]]:
    """What a push sends: ``name``'s version and label tags (None: no prompt's) and the log."""
    tags: list[str] = []
    if name is not None:
        out = git_maybe(ws.root, "for-each-ref", "--format=%(refname)",
                        f"refs/tags/{name}#*", f"refs/tags/{name}@v*")  # fmt: skip
        tags = (out or b"").decode().split()
    return [*tags, gitmirror.git_ref(LOG)], {}


def pull(
    ws: Workspace,
    remote: str,
    *,
    discard_local: bool = False,
    verify: Verify | None = None,
    merger: Merger | None = None,
) -> Pulled:
    """Take ``remote``'s prompt tags and label log: what verifies (see
    :mod:`tether.events.sync` for the outcomes). ``verify`` names arriving events that do not
    hold (under a root of trust, the labels' own check of signatures); ``merger`` gives who
    writes and signs a merge event (else the git committer, unsigned)."""
    ws.store.create()
    log = event_log(ws)
    check = verify or (lambda lg, c: _verify(ws, lg, c))
    rules = Rules(
        verify=lambda c: check(log, c),
        conflicts=conflicts,
        merger=merger or (lambda: _merger(ws, log)),
        error=PromptError,
        command=COMMAND,
    )
    return events_sync.pull(ws.root, remote, log, rules, discard=discard_local)


def conflicts(mine: list[Event], theirs: list[Event]) -> list[str]:
    """Label assignments both sides made with the same number: ``NAME#LABEL#N`` is one tag,
    and one version."""
    a, b = _assigned(mine), _assigned(theirs)
    return [
        f"{tag} (-> {a[tag].body.get('version')} by {a[tag].actor} here, -> "
        f"{b[tag].body.get('version')} by {b[tag].actor} there)"
        for tag in sorted(a.keys() & b.keys())
    ]


def _assigned(events: list[Event]) -> dict[str, Event]:
    out: dict[str, Event] = {}
    for ev in events:
        if ev.kind == ASSIGN:
            b = ev.body
            out.setdefault(f"{b.get('prompt')}#{b.get('label')}#{b.get('n')}", ev)
    return out


def _verify(ws: Workspace, log: EventLog, cand: Candidate) -> list[Refusal]:
    """Fold what the clone would hold (its log and the new events, or the candidate head's own
    history); under a root of trust, each new event the fold refuses is refused, and a log
    under another root than this clone pinned is refused whole."""
    events = [*log.events(), *cand.new] if cand.merge else log.events(cand.head)
    folded = label_log.fold(events)
    label_log.check_pin(folded, ws.dot, record=False)  # the pin moves once the pull is taken
    if folded.root is None:
        return []
    new = {ev.id for ev in cand.new}
    return [Refusal(r.event, r.kind, r.why) for r in folded.refusals if r.event in new]


def _merger(ws: Workspace, log: EventLog) -> tuple[str, Sign | None]:
    """Who writes the merge event: under a root, this machine's key, which must hold a role
    that may merge; without one, the git committer (unsigned, as assignments are)."""
    folded = label_log.fold(log.events())
    if folded.root is None:
        return committer_email(ws.root) or getpass.getuser(), None
    signer, key = local_key(
        folded.root,
        label_log.MERGE_ROLES,
        "joining this clone's label assignments with the remote's (a merge event)",
        "set TETHER_SIGNING_KEY to yours, or `--discard-local` to take the remote's as they are",
    )
    use = signer
    return key.identity, lambda data: use.sign(label_log.PAYLOAD_TYPE, data)
