"""The model registry's log and state: versions, stages, aliases, transition requests and their
decisions, all as events in the ``registry`` hash-chained log (mirrored into git as
``refs/tether/events/registry``). The registry's state is the fold of that log (``fold.py``):
nothing else is authoritative, so the index and the lineage refs are rebuilt from the chain.

With a root of trust in the log (``tether trust init``), every event is signed by a key of the
root, and only events that verify are applied; the policies are the root's. Without one, events
are applied as written, decisions are signed by keys trusted in ``tether.toml``, and a decision
is refused while ``tether.toml``'s policy differs from the last one recorded.

The verbs live next door: ``versions.py`` (register, alias, evidence), ``requests.py`` (request,
approve, reject).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from tether import keyconfig, signing
from tether._paths import check_link, check_path, check_paths
from tether.config import read_project
from tether.errors import RegistryError as RegistryError  # re-exported: the tree is in errors.py
from tether.errors import TetherError, TrustError
from tether.events import Event, EventLog
from tether.events.gitmirror import record as mirror
from tether.events.trusted import ROOT_EVENT
from tether.gitio.repo import committer_email, git, git_maybe, is_commit
from tether.objects.lock import file_lock
from tether.registry import checkpoint
from tether.registry.fold import LOG, PAYLOAD_TYPE, ROLES, fold
from tether.registry.state import Request, State, Version, read_cache, write_cache
from tether.runs.index import redactor_for
from tether.trust import pin
from tether.workspace.repo import Workspace

__all__ = ["RegistryError", "Request", "State", "Version"]

SIGNED = {"model.request", "model.approve", "model.reject", "policy.change"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def event_log(ws: Workspace) -> EventLog:
    ws.store.create()
    return EventLog(ws.store, ws.refs, LOG, ws.dot / "locks", redactor=redactor_for(ws))


@contextmanager
def writing(ws: Workspace) -> Iterator[State]:
    """The registry's state, read under its lock: every decision is made on the newest state
    and appended before another writer can look (two approvals racing are serialised)."""
    ws.store.create()
    with file_lock(ws.dot / "locks" / "registry.lock", exclusive=True, timeout=30):
        yield load_state(ws)


def load_state(ws: Workspace, *, root: str | None = None, full: bool = False) -> State:
    """The fold of the log, held to the root this clone pinned (``root``: a fingerprint given
    on the command line). The fold up to some head is cached, so a command reads only the
    events after it; a clone without that cache starts from the newest signed checkpoint
    (``checkpoint.py``); ``full`` folds the whole log, trusting neither. The lineage refs
    follow each new fold."""
    log = event_log(ws)
    head = log.head()
    cached = None if full else read_cache(ws.dot / "cache")
    if cached is not None and cached.head == head:
        check_pin(ws, cached, root)
        return cached
    state = fold_at(ws, log, head, cached=cached, full=full)
    check_pin(ws, state, root)  # before anything is kept of a fold under a root not trusted here
    write_cache(ws.dot / "cache", state)
    sync_refs(ws, state)
    return state


def fold_at(
    ws: Workspace, log: EventLog, head: str | None, *, cached: State | None = None,
    full: bool = False, checkpoints: tuple[str, ...] = (checkpoint.REF,),
) -> State:  # fmt: skip
    """The state at ``head``: folded on from ``cached`` or from a signed checkpoint (of the
    refs ``checkpoints``) when that fold's head is on ``head``'s first-parent line (it then
    holds a prefix of the order a whole fold takes: both give the same state), else from the
    start; ``full`` always from the start. Nothing is written."""

    def bases() -> Iterator[State | None]:
        yield cached
        for ref in checkpoints:
            yield checkpoint.read(ws, ref)

    state: State | None = None
    if head is not None and not full:
        for base in bases():
            newer = log.events_after(base.head, head) if base is not None and base.head else None
            if base is not None and newer is not None:
                state = fold(base, newer)
                break
    if state is None:
        state = fold(State(), log.events(head) if head is not None else [])
    state.head = head
    return state


def applied(ws: Workspace, ev: Event) -> State:
    """The state after ``ev``, which the fold must have applied (a refusal raises, naming why:
    the checks made before writing it missed a rule the fold holds)."""
    state = load_state(ws)
    for refused in state.refused:
        if refused.event == ev.id:
            raise RegistryError(f"{refused}; `tether audit verify` lists it")
    return state


def check_pin(
    ws: Workspace, state: State, given: str | None = None, *, record: bool = True
) -> None:
    """Hold the state's root to the one this clone pinned (see :mod:`tether.trust.pin`)."""
    fingerprint = None if state.root is None else state.root.fingerprint
    version = 0 if state.root is None else state.root.version
    pin.check(ws.dot, fingerprint, version, given=given, record=record)


def sync_refs(ws: Workspace, state: State) -> None:
    """The lineage refs ``registry/NAME/vN|STAGE|ALIAS`` as the fold says, and no others: an
    archived version stops being ``@production`` the moment the fold says so."""
    wanted: dict[str, list[str]] = {}
    for name, versions in state.models.items():
        for v in versions.values():
            ids = [v.object, v.record] + ([v.signature] if v.signature else [])
            wanted[f"registry/{name}/v{v.number}"] = ids
            for mark in (v.stage, *v.aliases):
                if mark:
                    wanted[f"registry/{name}/{mark}"] = [v.object]
    have = dict(ws.refs.items("registry"))
    for ref in have.keys() - wanted.keys():
        ws.refs.delete(ref)
    for ref, ids in wanted.items():
        if have.get(ref) != tuple(ids):
            ws.refs.set(ref, ids)


# -- appending -------------------------------------------------------------------------------
def append(
    ws: Workspace, kind: str, body: dict[str, Any], *, sign: bool | None = None,
    state: State | None = None,
) -> Event:  # fmt: skip
    """Append one registry event. With a root of trust in force, every event is signed by the
    local key, which must be in the root (else :class:`TrustError`, and nothing is written);
    without one, decisions are signed by a key trusted in tether.toml. The actor is the
    identity the key stands for, never a name the user typed."""
    redactor = redactor_for(ws)  # the project's own rules too: what is signed is what is kept
    body = {k: redactor.redact(v) if isinstance(v, str) else v for k, v in body.items()}
    state = state if state is not None else load_state(ws)
    log = event_log(ws)
    if state.root is not None:
        signer = signing.load_signer() if _has_any_key() else None
        key = None if signer is None else state.root.keys.get(signer.keyid)
        if signer is None or key is None:
            raise TrustError(
                f"this project has a root of trust, so every registry event is signed by a key "
                f"of the root, and {_which_key(signer)} is not one: ask an admin to add it "
                "(`tether trust add KEY.pub --identity YOU --role ROLE`)"
            )
        needed = ROLES.get(kind, frozenset())
        if kind != ROOT_EVENT and not needed & key.roles:
            held = ", ".join(sorted(key.roles)) or "none"
            raise TrustError(
                f"{key.identity}'s key holds the roles {held} in the root of trust; {kind} needs "
                f"one of {', '.join(sorted(needed))}: ask an admin (`tether trust add`)"
            )
        ev = log.append(
            kind, body, actor=key.identity, sign=lambda data: signer.sign(PAYLOAD_TYPE, data)
        )
        mirror(ws.root, log, ev)
        sign_head(ws, ev, signer)
        if (
            signer.writes_checkpoints
            and key.roles & checkpoint.SIGNERS
            and checkpoint.due(ws, ev.seq)
        ):
            checkpoint.write(ws, load_state(ws), ev.seq, signer)
        return ev
    must_sign = kind in SIGNED if sign is None else sign
    actor = committer_email(ws.root) or "unknown"
    legacy: Any = None
    if must_sign:
        legacy, actor = local_signer(ws)
        payload = json.dumps({"kind": kind, **body}, sort_keys=True).encode()
        body = {**body, "signed": legacy.sign(PAYLOAD_TYPE, payload)}
    ev = log.append(kind, body, actor=actor)
    mirror(ws.root, log, ev)
    if must_sign:
        sign_head(ws, ev, legacy)
    return ev


def _has_any_key() -> bool:
    try:
        signing.load_signer()
    except TetherError:
        return False
    return True


def _which_key(signer: signing.Signer | None) -> str:
    return "this machine has no signing key" if signer is None else f"your key {signer.keyid}"


HEAD_REF = f"refs/tether/heads/{LOG}"
HEAD_TYPE = "application/vnd.tether.log-head+json"


def sign_head(ws: Workspace, ev: Event, signer: Any) -> None:
    """The chain head, signed, as a git ref (a blob) pushed with the repository: cutting off the
    newest events is then caught, since the signed head would name an event that is gone."""
    doc = {"log": LOG, "head": ev.id, "seq": ev.seq, "time": ev.time}
    envelope = signer.sign(HEAD_TYPE, json.dumps(doc, sort_keys=True).encode())
    blob = git(ws.root, "hash-object", "-w", "--stdin", stdin=json.dumps(envelope).encode())
    git(ws.root, "update-ref", HEAD_REF, blob.decode().strip())


def signed_head(
    ws: Workspace, trusted: dict[str, signing.TrustedKey] | None = None, ref: str = HEAD_REF
) -> tuple[dict[str, Any], str] | None:
    """The signed head's document and the identity that signed it (None when there is none);
    ``ref``: where it is kept (a pull reads the remote's from a side ref)."""
    if git_maybe(ws.root, "rev-parse", "--verify", "-q", ref) is None:
        return None
    raw = git(ws.root, "cat-file", "blob", ref)
    keys = trusted if trusted is not None else keyconfig.trusted_keys(project_config(ws))
    checked = signing.verify(json.loads(raw), keys)
    if checked.payload_type != HEAD_TYPE:
        raise RegistryError(f"{ref} does not hold a signed log head")
    doc: dict[str, Any] = json.loads(checked.payload)
    return doc, checked.signer.identity


def local_signer(ws: Workspace) -> tuple[Any, str]:
    """This machine's signing key and the identity tether.toml trusts it for (or a refusal)."""
    signer = signing.load_signer()
    trusted = keyconfig.trusted_keys(project_config(ws)).get(signer.keyid)
    if trusted is None:
        raise RegistryError(
            f"your key {signer.keyid} is not trusted in tether.toml: ask an admin to run "
            f"`tether keys trust KEY.pub --identity YOU` (registry decisions are signed)"
        )
    return signer, trusted.identity


def verify_event(
    ws: Workspace, ev: Event, trusted: dict[str, signing.TrustedKey] | None = None
) -> str | None:
    """Without a root: a problem with a signed event's signature, or None: the envelope
    verifies with a key trusted in tether.toml, says what the event says, and its key's
    identity is the event's actor."""
    env = ev.body.get("signed")
    if env is None:
        return f"event {ev.seq} ({ev.kind}) is not signed" if ev.kind in SIGNED else None
    if trusted is None:
        trusted = keyconfig.trusted_keys(project_config(ws))
    try:
        checked = signing.verify(env, trusted)
    except signing.SignatureError as exc:
        return f"event {ev.seq} ({ev.kind}): {exc}"
    body = {k: v for k, v in ev.body.items() if k != "signed"}
    if json.loads(checked.payload) != {"kind": ev.kind, **body}:
        return f"event {ev.seq} ({ev.kind}) says something other than what its key signed"
    if checked.signer.identity != ev.actor:
        who = checked.signer.identity
        return f"event {ev.seq} ({ev.kind}) names {ev.actor} but was signed by {who}"
    return None


def project_config(ws: Workspace) -> dict[str, Any]:
    """tether.toml alone: trusted keys, groups and policies are what the team committed, never
    what one machine's local config or environment adds."""
    return read_project(ws.root)


def deciding_keys(ws: Workspace, state: State) -> dict[str, signing.TrustedKey]:
    """The keys whose signatures decide: the root's, else tether.toml's (never a key trusted
    with ``--local``, which only verifies on this clone)."""
    if state.root is not None:
        return dict(state.root.keys)
    return keyconfig.trusted_keys(project_config(ws))


def version_files(ws: Workspace, oid: str, path: str, where: str) -> list[tuple[str, str]]:
    """(relative name, object id) of every file of object ``oid``, registered from ``path``.
    Its names come from whoever recorded the run: each must be a path Tether writes (as git
    checks a tree's paths), and each symlink must stay inside the folder, else
    :class:`UnsafePathError` naming the entry (``where`` says whose files they are)."""
    from tether.workspace.materialize import is_folder

    if not is_folder(ws, oid):
        name = PurePosixPath(path).name
        return [(check_path(name, f"{where} (a file named {name!r})"), oid)]
    entries = ws.store.load_tree(oid).entries
    check_paths((e.path for e in entries), where)
    for e in entries:
        if e.target is not None:
            check_link(e.path, e.target, where)
    return [(e.path, e.id) for e in entries if e.target is None]  # (a link is no file)


def has_key(ws: Workspace) -> bool:
    """A local key that this project trusts (events are signed when there is one)."""
    try:
        signer = signing.load_signer()
    except TetherError:
        return False
    return signer.keyid in keyconfig.trusted_keys(project_config(ws))


def tag(ws: Workspace, name: str, commit: str | None, message: str) -> None:
    """The git mirror of a registry step: an annotated tag on the run's commit (skipped when
    that commit is not in this repository). A tag is never forced: one that exists is left."""
    if not commit or not is_commit(ws.root, commit):
        return
    if git_maybe(ws.root, "rev-parse", "--verify", "-q", f"refs/tags/{name}") is not None:
        return
    git(ws.root, "tag", "-a", name, "-m", message, commit)


def check_name(text: str, what: str) -> None:
    if not _NAME.match(text):
        raise RegistryError(f"{text!r} is not a {what} (lower-case letters, digits, - and _)")
