"""``tether trust``: making and changing the project's root of trust.

A root version is published as a ``trust.root`` event in each governance log (``registry`` and
``prompts``), so its place among the events says which root was in force for each of them. A
change is made as the next version of the current root; when this machine's key alone meets the
admin threshold it is published at once, else it is written to a file that other admins sign
(``tether trust sign FILE``) and anyone publishes (``tether trust publish FILE``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tether import keyconfig, signing
from tether._fs import atomic_write
from tether.errors import TrustError
from tether.events import EventLog
from tether.events.gitmirror import record as mirror
from tether.events.trusted import ROOT_EVENT
from tether.registry.policy import load_policies
from tether.registry.state import State
from tether.registry.store import append, load_state, project_config, sign_head, writing
from tether.runs.index import redactor_for
from tether.trust import pin
from tether.trust import root as trust
from tether.workspace.repo import Workspace

OTHER_LOGS = ("prompts",)  # the registry's own log is written through store.append


@dataclass(frozen=True)
class Proposal:
    """A root version: published (``root`` is now in force) or waiting for signatures."""

    version: int
    published: bool
    missing: int  # admin signatures still needed
    file: Path | None = None
    root: trust.TrustRoot | None = None


def current(ws: Workspace) -> trust.TrustRoot | None:
    return load_state(ws).root


def init(ws: Workspace, *, threshold: int = 1, out: Path | None = None) -> Proposal:
    """Root version 1 from tether.toml: its trusted keys and their roles, its groups and
    policies, with this machine's key as an admin (it signs)."""
    signer = signing.load_signer()
    config = project_config(ws)
    keys = {k.keyid: k for k in keyconfig.trusted_keys(config).values()}
    mine = keys.get(signer.keyid)
    identity = mine.identity if mine else _identity_of(signer)
    roles = (mine.roles if mine else frozenset()) | {"admin"}
    keys[signer.keyid] = signing.TrustedKey(signer.keyid, identity, roles, signer.public_pem)
    policies = load_policies(config).to_dict()
    md = trust.build(
        _known_roles(keys.values()), threshold=threshold, groups=keyconfig.groups(config),
        policies=policies,
    )  # fmt: skip
    with writing(ws) as state:
        if state.root is not None:
            raise TrustError(
                f"this project has a root of trust already (version {state.root.version}): "
                "`tether trust add|revoke|policy` change it"
            )
        return _sign_and_publish(ws, state, md, signer, out)


def change(
    ws: Workspace,
    *,
    add: signing.TrustedKey | None = None,
    revoke: str | None = None,
    policies: bool = False,
    threshold: int | None = None,
    out: Path | None = None,
) -> Proposal:
    """The next root version: a key added (or its identity and roles replaced), a key revoked,
    tether.toml's policies and groups signed in, or a new admin threshold."""
    signer = signing.load_signer()
    with writing(ws) as state:
        now = _require_root(state)
        keys = dict(now.keys)
        if add is not None:
            keys[add.keyid] = add
        if revoke is not None:
            if revoke not in keys:
                raise TrustError(f"{revoke} is not in the root (see `tether trust show`)")
            del keys[revoke]
        kw: dict[str, Any] = {}
        if policies:
            config = project_config(ws)
            kw["policies"] = load_policies(config).to_dict()
            kw["groups"] = keyconfig.groups(config)
        if threshold is not None:
            kw["threshold"] = threshold
        md = trust.successor(now, _known_roles(keys.values()), **kw)
        return _sign_and_publish(ws, state, md, signer, out)


def sign_file(ws: Workspace, path: Path) -> Proposal:
    """Add this machine's admin signature to a proposed root in ``path``; publish it when the
    thresholds are met."""
    signer = signing.load_signer()
    with writing(ws) as state:
        md = trust.parse(_read(path))
        return _sign_and_publish(ws, state, md, signer, path)


def publish(ws: Workspace, path: Path) -> Proposal:
    with writing(ws) as state:
        md = trust.parse(_read(path))
        return _publish_if_signed(ws, state, md, path)


def _sign_and_publish(
    ws: Workspace, state: State, md: Any, signer: signing.Signer, out: Path | None
) -> Proposal:
    admins = set(md.signed.roles["root"].keyids)
    previous = set() if state.root is None else {k.keyid for k in state.root.holders("admin")}
    if signer.keyid not in admins | previous:
        raise TrustError(
            f"your key {signer.keyid} is not an admin of root version {md.signed.version} or "
            "the one before: an admin signs root changes"
        )
    trust.sign(md, signer)
    return _publish_if_signed(ws, state, md, out)


def _publish_if_signed(ws: Workspace, state: State, md: Any, out: Path | None) -> Proposal:
    version = md.signed.version
    expected = 1 if state.root is None else state.root.version + 1
    if version != expected:  # checked first: an out-of-date proposal is no bug
        raise TrustError(
            f"this proposal is root version {version}, and the next one is {expected}"
            + (" (its version is in force already: propose again)" if version < expected else "")
        )
    missing, _who = trust.unsigned_admins(md, state.root)
    document = trust.dump(md)
    if missing:
        path = out or ws.root / f"root-{version}.json"
        atomic_write(path, document)
        return Proposal(version, False, missing, path)
    checked = trust.first(document) if state.root is None else trust.update(state.root, document)
    body = {"version": version, "metadata": document.decode()}
    ev = append(ws, ROOT_EVENT, body, sign=False, state=state)
    _sign_head_if_able(ws, ev, checked)
    for name in OTHER_LOGS:
        log = EventLog(ws.store, ws.refs, name, ws.dot / "locks", redactor=redactor_for(ws))
        mirror(ws.root, log, log.append(ROOT_EVENT, body, actor="tether"))
    pin.check(ws.dot, checked.fingerprint, checked.version)
    return Proposal(version, True, 0, out, checked)


def _sign_head_if_able(ws: Workspace, ev: Any, root: trust.TrustRoot) -> None:
    """The log's signed head, moved to the new root by the local key when the root holds it
    (an admin publishing it usually does): a root that is the newest event is then no gap."""
    from tether.errors import TetherError

    try:
        signer = signing.load_signer()
    except TetherError:
        return
    if signer.keyid in root.keys:
        sign_head(ws, ev, signer)


def _require_root(state: State) -> trust.TrustRoot:
    if state.root is None:
        raise TrustError("this project has no root of trust: `tether trust init` makes one")
    return state.root


def _known_roles(keys: Iterable[signing.TrustedKey]) -> list[signing.TrustedKey]:
    """Keys with the roles a root knows (tether.toml may name others, which are dropped)."""
    return [
        signing.TrustedKey(k.keyid, k.identity, k.roles & set(trust.ROLES), k.public_pem)
        for k in keys
    ]


def _identity_of(signer: signing.Signer) -> str:
    for info in signing.local_keys(signer.path.parent if signer.path else None):
        if info.keyid == signer.keyid and info.identity:
            return info.identity
    raise TrustError(f"cannot tell whose key {signer.keyid} is: its .json file is missing")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read the proposed root {path}: {exc.strerror}") from None
