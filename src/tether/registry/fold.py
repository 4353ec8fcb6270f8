"""The fold of the registry's event log into its state, applying only events that hold.

Once a ``trust.root`` event has put a root of trust in force, every event counts only when:

- it is signed (``body["signed"]``, over :func:`~tether.events.chain.signed_bytes`) by a key of
  the root in force at that point of the log, whose identity is the event's actor;
- that key holds a role the event needs (:data:`ROLES`);
- what it says holds on the state so far: a version is registered once, as the next number; an
  approval is by an approver the stage's policy allows, under the policy in force; a transition
  is backed by an open request for the same version and stage, with enough approvals made under
  the policy in force now, whose bound evidence passes the stage's gates.

An event that fails is not applied, and is kept in ``State.refused`` (``tether audit verify``
names it). Before any root, events are applied as they were written (a project without a root
records but does not guard: anyone who can write the log can write any event). A malformed event
never raises: it is refused like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tether import keyconfig
from tether.events import Event
from tether.events.trusted import ROOT_EVENT, Untrusted, check_signed, next_root
from tether.registry.policy import STAGES, Facts, Policies, Policy, failed_gates, load_policies
from tether.registry.state import Evidence, Refused, Request, State, Version
from tether.trust import root as trust

LOG = "registry"
PAYLOAD_TYPE = "application/vnd.tether.registry-event+json"
EVIDENCE = "model.evidence"
_PROMOTE = frozenset({"promoter", "ci", "admin"})
ROLES: dict[str, frozenset[str]] = {
    "model.register": _PROMOTE,
    "model.request": _PROMOTE,
    "model.alias": frozenset({"promoter", "admin"}),
    "model.sign": frozenset({"promoter", "ci", "approver", "admin"}),
    EVIDENCE: frozenset({"ci"}),
    "model.approve": frozenset({"approver"}),
    "model.reject": frozenset({"approver", "promoter", "ci", "admin"}),  # the requester withdraws
    "model.transition": frozenset({"approver", "promoter", "ci", "admin"}),
    "log.merge": frozenset({"approver", "promoter", "ci", "admin"}),
}


class _No(Exception):
    """The reason an event is not applied."""


def fold(state: State, events: Iterable[Event]) -> State:
    """Apply ``events`` to ``state`` in the log's fold order (``EventLog.events``: parents
    first, a merge's own side before the other clone's new events, the same in every clone),
    refusing the ones that do not hold."""
    for ev in events:
        try:
            if ev.kind == ROOT_EVENT:
                state.root = next_root(state.root, ev)
                state.roots.append(state.root.document.decode())
            else:
                if state.root is not None:
                    _check_signature(state.root, ev)
                _apply(state, ev)
        except (_No, Untrusted) as exc:
            state.refused.append(Refused(ev.id, ev.seq, ev.kind, str(exc)))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            why = f"it is malformed ({type(exc).__name__}: {exc})"
            state.refused.append(Refused(ev.id, ev.seq, ev.kind, why))
        state.head = ev.id
    return state


def policies(state: State) -> Policies | None:
    """The policies in force: the root's (None without a root)."""
    if state.root is None:
        return None
    return load_policies({"registry": {"policy": dict(state.root.policies)}})


def policy_id(policy: Policy) -> str:
    """What a request or an approval records as the policy it was made under (one stage's)."""
    from tether.hashing import hash_bytes

    doc = Policies({policy.stage: policy}).to_dict().get(policy.stage) or {}
    return hash_bytes(json.dumps({policy.stage: doc}, sort_keys=True).encode())


def _check_signature(root: trust.TrustRoot, ev: Event) -> None:
    needed = ROLES.get(ev.kind)
    if needed is None:
        raise _No(f"{ev.kind} is not a registry event this Tether knows")
    try:
        check_signed(root, ev, LOG, PAYLOAD_TYPE, needed)
    except Untrusted as exc:
        raise _No(str(exc)) from None


def _apply(state: State, ev: Event) -> None:
    apply = _APPLY.get(ev.kind)
    if apply is None:
        if state.root is None:
            return  # an unknown kind from a newer Tether: nothing it says is read
        raise _No(f"{ev.kind} is not a registry event this Tether knows")
    apply(state, ev)


def _register(state: State, ev: Event) -> None:
    b = ev.body
    name, number = _text(b, "name"), _int(b, "version")
    versions = state.models.setdefault(name, {})
    if number in versions:
        old = versions[number]
        raise _No(
            f"{name}@v{number} is registered already (run {old.run[:13]} by {old.by}): a version "
            "number is taken once"
        )
    if state.root is not None and number != max(versions, default=0) + 1:
        raise _No(f"{name}@v{number} skips numbers (the next is v{max(versions, default=0) + 1})")
    versions[number] = Version(
        name, number, _text(b, "object"), _text(b, "path"), _text(b, "run"), _text(b, "record"),
        str(b.get("description", "")), ev.actor, ev.time, b.get("commit"),
    )  # fmt: skip


def _evidence(state: State, ev: Event) -> None:
    b = ev.body
    v = _version(state, b)
    metrics = b.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise _No("its metrics are not a table")
    state.evidence[ev.id] = Evidence(
        ev.id, v.name, v.number, bool(b["dirty"]), bool(b.get("reproduced")),
        {str(k): float(x) for k, x in metrics.items()}, ev.actor,
    )  # fmt: skip
    v.evidence.append(ev.id)


def _request(state: State, ev: Event) -> None:
    b = ev.body
    v = _version(state, b)
    to = _text(b, "to")
    if to not in STAGES:
        raise _No(f"{to!r} is not a stage")
    bound = [str(e) for e in b.get("evidence") or []]
    if state.root is not None:
        policy = _policy(state, to)
        if b.get("policy") != policy_id(policy):
            raise _No("it was made under another policy than the one in force")
        for e in bound:
            found = state.evidence.get(e)
            if found is None or (found.name, found.version) != (v.name, v.number):
                raise _No(f"it binds evidence {e[7:19]} that is not about {v.ref}")
    state.requests[ev.id] = Request(
        ev.id, v.name, v.number, to, ev.actor, str(b.get("comment", "")), str(b.get("policy", "")),
        evidence=bound,
    )  # fmt: skip


def _decision(state: State, ev: Event) -> None:
    b = ev.body
    req = state.requests.get(_text(b, "request"))
    if req is None:
        raise _No("it decides a request that is not in the log")
    if req.status != "open":
        raise _No(f"the request is {req.status} already")
    if ev.kind == "model.reject":
        if state.root is not None and ev.actor != req.by:
            _need_role(state, ev, "approver", "only an approver or the requester can reject")
        req.rejections.append(ev.actor)
        req.status = "rejected"
        return
    if not b.get("counted", True):
        return
    if state.root is not None:
        policy = _policy(state, req.to)
        problem = approval_problem(state, policy, req, ev.actor)
        if problem:
            raise _No(problem)
        if b.get("policy") != policy_id(policy):
            raise _No("it was made under another policy than the one in force")
    req.approvals.append(ev.actor)


def approval_problem(
    state: State,
    policy: Policy,
    req: Request,
    identity: str,
    groups: Mapping[str, frozenset[str]] | None = None,
) -> str | None:
    """Why ``identity``'s approval of ``req`` would not count under ``policy`` (None: it would).
    The approver role itself is checked with the key (the fold and ``decide`` both do);
    ``groups`` are the root's unless given (tether.toml's, without a root)."""
    if not policy.self_approval and identity == req.by:
        return "the policy forbids approving your own request (self_approval = false)"
    if identity in req.approvals:
        return f"{identity} has approved this request already"
    if policy.approvers:
        if groups is None:
            groups = state.root.groups if state.root is not None else {}
        try:
            allowed = any(keyconfig.identity_has(identity, w, groups) for w in policy.approvers)
        except Exception as exc:  # a group the policy names but the root lacks
            return str(exc)
        if not allowed:
            return f"the {req.to} policy allows only {', '.join(policy.approvers)}"
    return None


def _transition(state: State, ev: Event) -> None:
    b = ev.body
    v = _version(state, b)
    stage = _text(b, "stage")
    req = state.requests.get(str(b.get("request")))
    if state.root is not None:
        if req is None or (req.name, req.version, req.to) != (v.name, v.number, stage):
            raise _No(f"no request for {v.ref} -> {stage} stands behind it")
        if req.status != "open":
            raise _No(f"its request is {req.status}")
        problem = transition_problem(state, req)
        if problem:
            raise _No(problem)
    if stage not in STAGES:
        raise _No(f"{stage!r} is not a stage")
    for other in state.models[v.name].values():
        if other.stage == stage:
            other.stage = None  # one version per stage
    v.stage = stage
    key = f"{v.name}#{stage}"
    state.transitions[key] = state.transitions.get(key, 0) + 1
    if req is not None:
        req.status = "approved"


def transition_problem(state: State, req: Request) -> str | None:
    """Why ``req`` cannot make its transition now under the root's policy (None: it can)."""
    policy = _policy(state, req.to)
    if req.policy != policy_id(policy):
        return f"the {req.to} policy changed since the request: request it again"
    approvals = len(set(req.approvals))
    if approvals < policy.approvals:
        return f"it has {approvals} of the {policy.approvals} approvals the policy needs"
    problems = failed_gates(policy, evidence_facts(state, req))
    return "; ".join(problems) or None


def evidence_facts(state: State, req: Request) -> Facts:
    """The gates' facts from the evidence a request binds (signed by CI keys), and the
    version's signature (a ``model.sign`` event that held)."""
    bound = [state.evidence[e] for e in req.evidence if e in state.evidence]
    v = state.version(req.name, req.version)
    metrics: dict[str, float] = {}
    for e in bound:
        metrics.update(e.metrics)
    dirty = not bound or any(e.dirty for e in bound)
    return Facts(dirty, any(e.reproduced for e in bound), v.signature is not None, metrics)


def _alias(state: State, ev: Event) -> None:
    b = ev.body
    name, alias = _text(b, "name"), _text(b, "alias")
    if name not in state.models:
        raise _No(f"no model {name} is registered")
    target = None if b.get("version") is None else _version(state, b)
    for v in state.models[name].values():
        v.aliases.discard(alias)
    if target is not None:
        target.aliases.add(alias)


def _sign(state: State, ev: Event) -> None:
    v = _version(state, ev.body)
    if state.root is not None:
        if v.signature is not None:
            raise _No(f"{v.ref} is signed already")
        if ev.body.get("object") != v.object or not ev.body.get("subjects"):
            raise _No(f"it does not say it signs {v.ref}'s files (object {v.object[:19]}…)")
    v.signature, v.signed_by = _text(ev.body, "envelope"), ev.actor


def _policy_change(state: State, ev: Event) -> None:
    if state.root is not None:
        raise _No("policies live in the root of trust (`tether trust policy`), not in events")
    state.policy = _text(ev.body, "policy_id")


def _merge(state: State, ev: Event) -> None:
    """Two clones' histories joined (``log.merge``, signed like any event under a root): the
    fold has applied both sides already, this clone's first."""


_APPLY: dict[str, Callable[[State, Event], None]] = {
    "model.register": _register,
    EVIDENCE: _evidence,
    "model.request": _request,
    "model.approve": _decision,
    "model.reject": _decision,
    "model.transition": _transition,
    "model.alias": _alias,
    "model.sign": _sign,
    "policy.change": _policy_change,
    "log.merge": _merge,
}


def _need_role(state: State, ev: Event, role: str, why: str) -> None:
    assert state.root is not None
    keyid = (ev.body.get("signed") or {}).get("signatures", [{}])[0].get("keyid")
    if not state.root.role_of(str(keyid), role):
        raise _No(why)


def _policy(state: State, stage: str) -> Policy:
    found = policies(state)
    return found.for_stage(stage) if found is not None else Policy(stage)


def _version(state: State, body: dict[str, Any]) -> Version:
    name, number = _text(body, "name"), _int(body, "version")
    found = state.models.get(name, {}).get(number)
    if found is None:
        raise _No(f"{name}@v{number} is not registered")
    return found


def _text(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not text")
    return value


def _int(body: dict[str, Any], key: str) -> int:
    value = body[key]
    if type(value) is not int:
        raise TypeError(f"{key} is not a whole number")
    return value
