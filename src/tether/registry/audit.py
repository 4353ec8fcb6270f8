"""``tether audit``: the registry's event log, and its verification: the hash chain (every
event present, unchanged and in order), every signature (a trusted key, the event's own actor,
the signed payload equal to the event), the signed head (nothing cut off the end) and, with a
root of trust, every event the fold refused (a key without the role, a transition no approved
request stands behind…) and the root this clone pinned. A ``tether.toml`` whose keys or
policies differ from the root's is reported as a proposal: it decides nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tether import keyconfig
from tether.errors import TetherError
from tether.events import Event, EventLog, packing
from tether.hashing import hash_bytes
from tether.registry import checkpoint
from tether.registry.policy import load_policies
from tether.registry.state import State
from tether.registry.store import (
    HEAD_REF,
    event_log,
    load_state,
    project_config,
    signed_head,
    verify_event,
)
from tether.trust.root import TrustRoot
from tether.workspace.repo import Workspace


@dataclass
class Report:
    events: int
    problems: list[str] = field(default_factory=list)
    head_signed_by: str | None = None
    root: TrustRoot | None = None
    proposals: list[str] = field(default_factory=list)  # tether.toml unlike the root
    models: list[str] | None = None  # the registered names, when the log could be folded
    unguarded: int = 0  # unsigned events in a log no root of trust guards (allowed, said)

    @property
    def ok(self) -> bool:
        return not self.problems


def log(ws: Workspace, model: str | None = None) -> list[Event]:
    events = event_log(ws).events()
    if model is None:
        return events
    return [e for e in events if e.body.get("name") == model]


CHAIN_FILE = "audit-chain.json"  # in .tether/cache: the head an audit verified, the packs
SEEN_FILE = "audit-verified.json"  # in .tether/cache: event ids whose signature checked out


def verify(ws: Workspace, *, full: bool = False) -> Report:
    """The whole chain is walked and hashed every time. An event's signature is checked again
    only when this cache has not seen that event id verify under the same trusted keys (an id
    is the hash of the event, envelope included, so a verified id stays verified); ``full``
    checks every signature."""
    chain = event_log(ws)
    remembered = ws.dot / "cache" / CHAIN_FILE
    known = None if full else packing.verified_before(chain, remembered)
    if known is not None:  # packs unchanged since an audit: walk only the events after it
        count, new_ids = known
        try:
            state = load_state(ws)
        except TetherError:
            state = None
        if state is not None and state.root is not None:
            report = _verify_under_root(ws, state, chain, Report(count, models=list(state.models)))
            if report.ok:
                _pack(ws, chain, new_ids, count)
            return report
    checked, events = chain.checked_events()
    report = Report(checked.count)
    if not checked.ok:
        report.problems.append(checked.problem or "the chain is broken")
        return report  # the signatures of a broken chain prove nothing
    try:
        state = load_state(ws, full=full)  # full: every signature again, no cache, no checkpoint
    except TetherError as exc:
        report.problems.append(str(exc))
        return report
    report.models = list(state.models)
    if state.root is not None:
        report = _verify_under_root(ws, state, chain, report)
        if report.ok:
            _pack(ws, chain, [e.id for e in events], report.events)
        return report
    report.problems += [str(r) for r in state.refused]
    report.unguarded = sum(1 for e in events if "signed" not in e.body)
    config = project_config(ws)
    trusted = keyconfig.trusted_keys(config)
    trust_id = hash_bytes(json.dumps(sorted((k, t.identity) for k, t in trusted.items())).encode())
    seen = set() if full else _seen(ws, trust_id)
    good = []
    for ev in events:
        if ev.id in seen:
            good.append(ev.id)
            continue
        problem = verify_event(ws, ev, trusted)
        if problem:
            report.problems.append(problem)
        else:
            good.append(ev.id)
    _remember(ws, trust_id, good)
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
    newest = max((e.seq for e in signed), default=-1)
    if doc["head"] not in ids:
        report.problems.append(
            f"the signed head names event {doc['seq']} ({str(doc['head'])[:19]}…), which is not in "
            f"the log: the newest events were cut off (the log ends at "
            f"{max((e.seq for e in events), default=-1)})"
        )
    elif signed and ids[doc["head"]].seq < newest:
        report.problems.append(
            f"the signed head is older than the newest signed event ({newest}): it was "
            "replaced by an older one"
        )
    return report


def _pack(ws: Workspace, chain: EventLog, ids: list[str], count: int) -> None:
    """A whole chain under a root: its loose events into packs, and remember the head."""
    head = chain.head()
    if head is not None and packing.pack_loose(chain, ids):
        packing.remember(chain, ws.dot / "cache" / CHAIN_FILE, head, count)


def _verify_under_root(ws: Workspace, state: State, chain: EventLog, report: Report) -> Report:
    """Every event's signature, role and meaning were checked by the fold: report what it
    refused, the signed head, and tether.toml where it differs from the root."""
    root = report.root = state.root
    assert root is not None
    report.problems += [str(r) for r in state.refused]
    if (bad := checkpoint.problem(ws)) is not None:
        report.problems.append(bad)
    try:
        head = signed_head(ws, dict(root.keys))
    except TetherError as exc:
        report.problems.append(f"the signed head ({HEAD_REF}) does not verify: {exc}")
        head = None
    if head is None:
        report.problems.append(f"{HEAD_REF} is missing: the signed head was deleted")
    else:
        doc, report.head_signed_by = head
        if not _in_chain(chain, str(doc["head"])):
            report.problems.append(
                f"the signed head names event {doc['seq']}, which is not in the log: the newest "
                "events were cut off"
            )
    report.proposals = proposals(ws, root)
    return report


def _in_chain(chain: EventLog, event: str) -> bool:
    try:
        return chain.store.has(event) and chain.is_ancestor(event, chain.head())
    except TetherError:
        return False


def proposals(ws: Workspace, root: TrustRoot) -> list[str]:
    """Where tether.toml's keys, groups or policies differ from the root in force: proposals
    for an admin to sign (`tether trust add`, `tether trust policy`), never in force."""
    config = project_config(ws)
    out = []
    try:
        keys = keyconfig.trusted_keys(config)
        policies = load_policies(config).to_dict()
        groups = {g: sorted(m) for g, m in keyconfig.groups(config).items()}
    except TetherError as exc:
        return [f"tether.toml cannot be read as a proposal ({exc})"]
    for keyid, key in sorted(keys.items()):
        held = root.keys.get(keyid)
        admin = frozenset({"admin"})  # who is an admin is the root's alone to say
        if held is None or (held.identity, held.roles - admin) != (key.identity, key.roles - admin):
            out.append(f"key {keyid} ({key.identity}, {', '.join(sorted(key.roles)) or '-'})")
    if policies != dict(root.policies):
        out.append("the [registry.policy] tables")
    if groups != {g: sorted(m) for g, m in root.groups.items()}:
        out.append("the [groups] table")
    return out


def _seen(ws: Workspace, trust_id: str) -> set[str]:
    try:
        doc = json.loads((ws.dot / "cache" / SEEN_FILE).read_bytes())
    except (OSError, ValueError):
        return set()
    return set(doc.get("verified") or ()) if doc.get("trust") == trust_id else set()


def _remember(ws: Workspace, trust_id: str, ids: list[str]) -> None:
    from tether._fs import write_cache

    doc = {"trust": trust_id, "verified": ids}
    write_cache(ws.dot / "cache" / SEEN_FILE, json.dumps(doc).encode())
