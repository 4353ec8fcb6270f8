"""Stage requests and their decisions: ``request``, ``decide`` (approve or reject), ``ready``.

With a root of trust, each step is checked here exactly as the fold will check it (``fold.py``)
before anything is written, so what a command accepts is what every clone's fold applies: the
policy is the root's, approvals count under the policy in force, and the gates read the
evidence a CI key signed and the request binds. Without one, the gates read this clone's runs
and the policy is tether.toml's, recorded with ``tether model policy apply``.
"""

from __future__ import annotations

from dataclasses import replace

from tether import keyconfig, signing
from tether.errors import RegistryError, TrustError
from tether.registry import fold
from tether.registry.policy import STAGES, Facts, Policies, Policy, failed_gates, load_policies
from tether.registry.release import signature_problem
from tether.registry.state import Request, State, Version
from tether.registry.store import (
    append,
    applied,
    has_key,
    load_state,
    local_signer,
    project_config,
    tag,
    writing,
)
from tether.registry.versions import facts, latest_evidence
from tether.workspace.repo import Workspace


def _policies(ws: Workspace, state: State) -> Policies:
    """The root's policies; without a root, tether.toml's once recorded."""
    signed = fold.policies(state)
    if signed is not None:
        return signed  # tether.toml differing is a proposal: `tether audit verify` reports it
    policies = load_policies(project_config(ws))
    if state.policy != policies.id and (policies.stages or state.policy is not None):
        raise RegistryError(
            "the policy in tether.toml differs from the last one recorded: record it with "
            "`tether model policy apply` (a signed, audited event) before deciding anything"
        )
    return policies


def _policy_id(state: State, policies: Policies, stage: str) -> str:
    return fold.policy_id(policies.for_stage(stage)) if state.root is not None else policies.id


def _gate_facts(ws: Workspace, state: State, v: Version, req: Request | None) -> Facts:
    """The gates' facts; ``signed`` only for a signature over exactly this version's files,
    by a key that decides (the envelope itself is read: an event naming it is not enough)."""
    if state.root is None:
        found = facts(ws, v)
    else:
        probe = req or Request(
            "", v.name, v.number, "", "", "", "", evidence=latest_evidence(state, v)
        )
        found = fold.evidence_facts(state, probe)
    if found.signed and signature_problem(ws, state, v) is not None:
        found = replace(found, signed=False)
    return found


def request(ws: Workspace, spec: str, to: str, comment: str = "") -> Request:
    if to not in STAGES:
        raise RegistryError(f"stages are {', '.join(STAGES)}; free-form names are aliases")
    with writing(ws) as state:
        v = state.resolve(spec)
        policies = _policies(ws, state)
        policy = policies.for_stage(to)
        problems = failed_gates(policy, _gate_facts(ws, state, v, None))
        if problems:
            raise RegistryError(f"{v.ref} cannot go to {to}: " + "; ".join(problems) + _how(state))
        pid = _policy_id(state, policies, to)
        evidence = latest_evidence(state, v) if state.root is not None else []
        body = {"name": v.name, "version": v.number, "to": to, "comment": comment, "policy": pid}
        if state.root is not None:
            body["evidence"] = evidence
        ev = append(ws, "model.request", body, state=state)
        req = Request(ev.id, v.name, v.number, to, ev.actor, comment, pid, evidence=evidence)
        if policy.approvals == 0:
            _transition(ws, state, v, to, req)
    return applied(ws, ev).requests[ev.id]


def _how(state: State) -> str:
    if state.root is None:
        return ""
    return " (gates count the evidence a CI key signed: `tether model attest NAME@vN`)"


def find_request(state: State, spec: str) -> Request:
    """A request by id prefix (at least 4 characters), or the open request for ``NAME@VERSION``."""
    bare = spec.removeprefix("blake3:")
    matches = [r for r in state.requests.values() if r.id.removeprefix("blake3:").startswith(bare)]
    if len(matches) == 1 and len(bare) >= 4:
        return matches[0]
    if "@" in spec:
        v = state.resolve(spec)
        open_ = [
            r
            for r in state.requests.values()
            if (r.name, r.version) == (v.name, v.number) and r.status == "open"
        ]
        if len(open_) == 1:
            return open_[0]
        if not open_:
            raise RegistryError(f"{v.ref} has no open transition request")
        raise RegistryError(f"{v.ref} has {len(open_)} open requests: name one by its id")
    raise RegistryError(
        f"no request {spec!r}"
        if not matches
        else f"{spec!r} names several requests (or is "
        "shorter than 4 characters): give more of its id"
    )


def _deciding_key(ws: Workspace, state: State) -> signing.TrustedKey:
    if state.root is None:
        signer, _identity = local_signer(ws)
        return keyconfig.trusted_keys(project_config(ws))[signer.keyid]
    signer = signing.load_signer()
    key = state.root.keys.get(signer.keyid)
    if key is None:
        raise TrustError(
            f"your key {signer.keyid} is not in the root of trust: ask an admin to add it "
            "(`tether trust add KEY.pub --identity YOU --role approver`)"
        )
    return key


def decide(ws: Workspace, spec: str, approve: bool, comment: str = "") -> Request:
    """Approve or reject a request. An approval counts only from a key with the approver role
    whose identity the stage's policy allows (and not the requester's own, unless the policy
    says so). The approval that completes the count makes the transition, and is refused
    (nothing recorded) while a gate fails; approving again once the gates pass completes it."""
    with writing(ws) as state:
        req = find_request(state, spec)
        if req.status != "open":
            raise RegistryError(f"the request {req.id[:19]} is {req.status}: nothing to decide")
        policies = _policies(ws, state)
        policy = policies.for_stage(req.to)
        key = _deciding_key(ws, state)
        identity = key.identity
        if not approve and identity != req.by and "approver" not in key.roles:
            raise RegistryError(
                f"{identity} cannot reject {req.name}@v{req.version} -> {req.to}: only an "
                "approver or the requester (withdrawing it) can"
            )
        v = state.version(req.name, req.version)
        if approve and state.root is not None and req.policy != fold.policy_id(policy):
            raise RegistryError(
                f"the {req.to} policy changed since {req.by} made this request: approvals count "
                f"only under the policy in force; request it again (`tether model request "
                f"{v.ref} --to {req.to}`)"
            )
        if approve:
            if _complete(ws, state, policy, req, v, identity):
                return load_state(ws).requests[req.id]
            why = _cannot_approve(ws, state, policy, req, key)
            if why:
                raise RegistryError(
                    f"{identity} cannot approve {req.name}@v{req.version} -> {req.to}: {why}"
                )
            if len(set(req.approvals) | {identity}) >= policy.approvals:
                problems = failed_gates(policy, _gate_facts(ws, state, v, req))
                if problems:
                    raise RegistryError(
                        f"{v.ref} cannot go to {req.to} yet, so your approval was not recorded: "
                        + "; ".join(problems)
                    )
        kind = "model.approve" if approve else "model.reject"
        body = {"request": req.id, "name": req.name, "version": req.version, "to": req.to,
                "comment": comment, "policy": _policy_id(state, policies, req.to)}  # fmt: skip
        ev = append(ws, kind, body, state=state)
        if approve:
            req.approvals.append(identity)
            if len(set(req.approvals)) >= policy.approvals:
                _transition(ws, state, v, req.to, req)
    return applied(ws, ev).requests[req.id]


def _complete(
    ws: Workspace, state: State, policy: Policy, req: Request, v: Version, identity: str
) -> bool:
    """An approver who approved already, of a request with enough approvals (a gate failed
    then), makes the transition once the gates pass."""
    if identity not in req.approvals or len(set(req.approvals)) < policy.approvals:
        return False
    problems = failed_gates(policy, _gate_facts(ws, state, v, req))
    if problems:
        raise RegistryError(f"{v.ref} cannot go to {req.to} yet: " + "; ".join(problems))
    _transition(ws, state, v, req.to, req)
    return True


def _cannot_approve(
    ws: Workspace, state: State, policy: Policy, req: Request, key: signing.TrustedKey
) -> str | None:
    if "approver" not in key.roles:
        how = "tether trust add" if state.root is not None else "tether keys trust"
        return f"its key does not have the approver role (`{how} … --role approver`)"
    groups = None if state.root is not None else keyconfig.groups(project_config(ws))
    return fold.approval_problem(state, policy, req, key.identity, groups)


def _transition(ws: Workspace, state: State, v: Version, stage: str, req: Request) -> None:
    before = next((x for x in state.models[v.name].values() if x.stage == stage), None)
    n = state.transitions.get(f"{v.name}#{stage}", 0) + 1
    body = {"name": v.name, "version": v.number, "stage": stage, "request": req.id,
            "replaces": before.number if before else None, "n": n}  # fmt: skip
    ev = append(ws, "model.transition", body, sign=has_key(ws), state=state)
    message = f"{v.ref} -> {stage}\n\nevent: {ev.id}\nrequest: {req.id}\n"
    tag(ws, f"{v.name}#{stage}#{n}", v.commit, message)


def open_gates(ws: Workspace) -> dict[str, list[str]]:
    """Each open request's failing gates, as an approval would check them now (empty: the
    gates pass)."""
    state = load_state(ws)
    policies = _policies(ws, state)
    out = {}
    for req in state.requests.values():
        if req.status == "open":
            v = state.version(req.name, req.version)
            out[req.id] = failed_gates(policies.for_stage(req.to), _gate_facts(ws, state, v, req))
    return out


def apply_policy(ws: Workspace) -> str:
    """Record tether.toml's policy as the one in force (signed); with a root of trust the
    policies are the root's, and this is refused."""
    policies = load_policies(project_config(ws))
    with writing(ws) as state:
        if state.root is not None:
            raise TrustError(
                "this project's policies are in its root of trust: `tether trust policy` "
                "signs tether.toml's policy into a new root version"
            )
        if state.policy == policies.id:
            return policies.id
        append(ws, "policy.change", {"policy_id": policies.id, "policy": policies.to_dict()})
    return policies.id


def ready(ws: Workspace) -> list[Request]:
    """Open requests this key may approve now: its identity allowed, the gates passing."""
    state = load_state(ws)
    key = _deciding_key(ws, state)
    policies = _policies(ws, state)
    out = []
    for req in state.requests.values():
        if req.status != "open":
            continue
        policy = policies.for_stage(req.to)
        if _cannot_approve(ws, state, policy, req, key):
            continue
        v = state.version(req.name, req.version)
        if not failed_gates(policy, _gate_facts(ws, state, v, req)):
            out.append(req)
    return out
