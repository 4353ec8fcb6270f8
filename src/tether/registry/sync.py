"""``tether model push`` and ``pull``: the registry's log, tags, signed head and checkpoint
through a git remote.

A push is one atomic git push, refused when the remote's log moved on. A pull (``events/
sync.py``) fetches into side refs and folds what arrived before anything local moves: under a
root of trust, an event the fold refuses is named and not taken; two histories that both moved
on are joined by a ``log.merge`` event, signed by this clone's key, unless both made the same
numbered thing (a version, a transition's tag, a root version, a version's signature). The
signed head and the checkpoint are replaced only by ones that verify, after the log moved.
"""

from __future__ import annotations

import json
from typing import Any

from tether import signing
from tether.errors import GitError, RegistryError, TetherError
from tether.events import Event, gitmirror
from tether.events import sync as events_sync
from tether.events.gitmirror import incoming, rev
from tether.events.sync import DISCARDED, FAST_FORWARD, MERGED, Candidate, Pulled, Refusal, Rules
from tether.events.trusted import ROOT_EVENT, local_key
from tether.gitio.repo import committer_email, git, git_maybe
from tether.objects.lock import file_lock
from tether.registry import checkpoint
from tether.registry.fold import LOG, PAYLOAD_TYPE, ROLES, fold
from tether.registry.state import State, from_doc, to_doc, write_cache
from tether.registry.store import (
    HEAD_REF,
    check_pin,
    deciding_keys,
    event_log,
    fold_at,
    load_state,
    local_signer,
    sign_head,
    signed_head,
    sync_refs,
)
from tether.workspace.repo import Workspace

COMMAND = "tether model pull"
MERGE = "log.merge"


def push(ws: Workspace, remote: str) -> None:
    """The registry's tags, its log's git mirror, its signed head and checkpoint, in one atomic
    git push (refused when the remote's log has moved on: pull first)."""
    refs, leases = push_spec(ws)
    try:
        gitmirror.push(ws.root, remote, refs, leases)
    except GitError as exc:
        raise RegistryError(
            f"push to {remote} refused. If {remote}'s registry moved on, `{COMMAND}` takes its "
            f"events (merging them with yours), then push again. {exc}"
        ) from None


def push_spec(ws: Workspace) -> tuple[list[str], dict[str, str | None]]:
    """What a push of the registry sends: its refs, and its leases (blob refs replaced only
    when the remote still holds what this clone last fetched); refused when this clone holds
    events its own root refuses."""
    state = load_state(ws)
    bad = _unpushed_refused(ws, state)
    if bad:
        raise RegistryError(
            f"this clone's registry log holds {len(bad)} event(s) that do not verify under the "
            f"root of trust ({'; '.join(bad[:3])}): pushing them would make every other clone's "
            f"pull refuse the remote. Keep the remote's log instead with `{COMMAND} "
            "--discard-local`"
        )
    names = sorted(state.models)
    out = (
        git_maybe(
            ws.root,
            "for-each-ref",
            "--format=%(refname)",
            *(f"refs/tags/{n}@v*" for n in names),
            *(f"refs/tags/{n}#*" for n in names),
        )
        if names
        else b""
    )
    refs = [*(out or b"").decode().split(), gitmirror.git_ref(LOG)]
    leases = {r: rev(ws.root, incoming(r)) for r in (HEAD_REF, checkpoint.REF) if rev(ws.root, r)}
    return refs, leases


def _unpushed_refused(ws: Workspace, state: State) -> list[str]:
    """Events the fold refused that the remote (as last fetched) does not hold: what a push
    would hand every clone, whose pull would refuse them."""
    if state.root is None or not state.refused:
        return []
    known: set[str] = set()
    commit = rev(ws.root, incoming(gitmirror.git_ref(LOG)))
    head = gitmirror.event_id(ws.root, commit) if commit else None
    if head is not None and ws.store.has(head):
        known = {e.id for e in event_log(ws).events(head)}
    return [str(r) for r in state.refused if r.event not in known]


def pull(ws: Workspace, remote: str, *, discard_local: bool = False) -> Pulled:
    """Take ``remote``'s registry log, tags, signed head and checkpoint: what verifies (see
    :mod:`tether.events.sync` for the outcomes); ``discard_local`` drops this clone's unpushed
    events when both sides moved on."""
    ws.store.create()
    log = event_log(ws)
    kept: dict[str, State] = {}
    rules = Rules(
        verify=lambda c: _verify(ws, c, kept),
        conflicts=conflicts,
        merger=lambda: _merger(ws, kept["state"]),
        error=RegistryError,
        command=COMMAND,
        extra=[HEAD_REF, checkpoint.REF],
    )
    with file_lock(ws.dot / "locks" / "registry.lock", exclusive=True, timeout=30):
        pulled = events_sync.pull(ws.root, remote, log, rules, discard=discard_local)
        if pulled.outcome not in (FAST_FORWARD, DISCARDED, MERGED):
            return pulled
        state = kept["state"]
        if pulled.merge is not None:
            fold(state, [log.event(pulled.merge)])
        state.head = pulled.head
        write_cache(ws.dot / "cache", state)
        sync_refs(ws, state)
        _take_checkpoint(ws, pulled)
        _take_signed_head(ws, state, pulled)
    return pulled


def _verify(ws: Workspace, cand: Candidate, kept: dict[str, State]) -> list[Refusal]:
    """Fold the candidate: its new events after this clone's (a merge), or its own order from
    a fold or checkpoint it extends. Under a root, what the fold refuses is refused."""
    log = event_log(ws)
    if cand.merge:
        state = _copy(load_state(ws))
        fold(state, cand.new)
    else:
        extends = (checkpoint.REF, incoming(checkpoint.REF))
        state = fold_at(ws, log, cand.head, cached=_cached(ws), checkpoints=extends)
    state.head = cand.head
    # a remote under another root than the pinned one is refused whole; the pin moves only
    # once the pull is taken (the next read of the state records it)
    check_pin(ws, state, record=False)
    kept["state"] = state
    if state.root is None:
        return []  # without a root, events are applied as written
    return [Refusal(r.event, r.kind, r.reason) for r in state.refused]


def _cached(ws: Workspace) -> State | None:
    try:
        return load_state(ws)  # read anew from the cache: the fold may extend it
    except TetherError:
        return None


def _copy(state: State) -> State:
    copied = from_doc(json.loads(json.dumps(to_doc(state))))
    assert copied is not None
    return copied


def conflicts(mine: list[Event], theirs: list[Event]) -> list[str]:
    """What both sides made that only one may: the same version number of a model, a
    transition's number (its tag ``NAME#STAGE#N``), a root version, a version's signature."""
    a, b = _numbered(mine), _numbered(theirs)
    return [
        f"{thing} ({a[thing].actor} here, {b[thing].actor} there)"
        for thing in sorted(a.keys() & b.keys())
    ]


def _numbered(events: list[Event]) -> dict[str, Event]:
    out: dict[str, Event] = {}
    for ev in events:
        b = ev.body
        if ev.kind == "model.register":
            thing = f"{b.get('name')}@v{b.get('version')}"
        elif ev.kind == "model.transition":
            thing = f"{b.get('name')}#{b.get('stage')}#{b.get('n')}"
        elif ev.kind == "model.sign":
            thing = f"a signature of {b.get('name')}@v{b.get('version')}"
        elif ev.kind == ROOT_EVENT:
            thing = f"root version {_root_version(b)}"
        else:
            continue
        out.setdefault(thing, ev)
    return out


def _root_version(body: dict[str, Any]) -> object:
    try:
        return json.loads(str(body.get("metadata")))["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return "?"


def _merger(ws: Workspace, state: State) -> tuple[str, events_sync.Sign | None]:
    """Who writes the merge event: under a root, this machine's key, which must hold a role
    that may merge; without one, the git committer (unsigned, as other events)."""
    if state.root is None:
        return committer_email(ws.root) or "unknown", None
    signer, key = local_key(
        state.root,
        ROLES[MERGE],
        f"joining this clone's registry log with the remote's (a {MERGE} event)",
        f"ask someone who holds one to pull, or keep the remote's log with `{COMMAND} "
        "--discard-local`",
    )
    use = signer
    return key.identity, lambda data: use.sign(PAYLOAD_TYPE, data)


def _take_checkpoint(ws: Workspace, pulled: Pulled) -> None:
    """The remote's checkpoint, when it verifies and this clone has none or took the remote's
    history (after a merge, this clone's own stays: its head is on the merge's first-parent
    line)."""
    theirs, mine = rev(ws.root, incoming(checkpoint.REF)), rev(ws.root, checkpoint.REF)
    if theirs is None or theirs == mine or (mine is not None and pulled.merge is not None):
        return
    found = checkpoint.read(ws, incoming(checkpoint.REF))
    if found is not None and found.head and _in_log(ws, found.head, pulled.head):
        git(ws.root, "update-ref", checkpoint.REF, theirs)


def _take_signed_head(ws: Workspace, state: State, pulled: Pulled) -> None:
    """The newest signed head that verifies and names an event of the log now, this clone's
    or the remote's; when neither names the new head (a merge, or a remote head whose
    signature does not hold), this clone's key signs the head it verified, if it has one."""
    log = event_log(ws)
    keys = deciding_keys(ws, state)
    best: tuple[int, str, str] | None = None
    for ref in (HEAD_REF, incoming(HEAD_REF)):
        blob = rev(ws.root, ref)
        try:
            found = signed_head(ws, keys, ref) if blob else None
        except (TetherError, ValueError):
            continue
        named = str(found[0].get("head")) if found is not None else ""
        if blob and found is not None and _in_log(ws, named, pulled.head):
            seq = int(found[0].get("seq") or 0)
            if best is None or seq > best[0]:
                best = (seq, blob, named)
    if (best is None or best[2] != pulled.head) and pulled.head is not None:
        signer = _head_signer(ws, state)
        if signer is not None:
            sign_head(ws, log.event(pulled.head), signer)
            return
    if best is not None and best[1] != rev(ws.root, HEAD_REF):
        git(ws.root, "update-ref", HEAD_REF, best[1])


def _head_signer(ws: Workspace, state: State) -> Any:
    """The key that signs this clone's heads: the root's (it signed the merge), else the one
    tether.toml trusts (None when there is none)."""
    try:
        if state.root is not None:
            signer = signing.load_signer()
            return signer if signer.keyid in state.root.keys else None
        return local_signer(ws)[0]
    except TetherError:
        return None


def _in_log(ws: Workspace, event: str, head: str | None) -> bool:
    log = event_log(ws)
    try:
        return head is not None and log.store.has(event) and log.is_ancestor(event, head)
    except TetherError:
        return False
