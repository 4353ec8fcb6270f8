"""The model registry: versions, stages, aliases, transition requests and their decisions, all as
events in the ``registry`` hash-chained log (mirrored into git as ``refs/tether/events/registry``).
The registry's state is the fold of that log: nothing else is authoritative, so the index can
always be rebuilt from the chain.

Requests, approvals, rejections and policy changes are DSSE-signed by the actor's key; they count
only when the key is trusted in ``tether.toml`` for an identity with that right. Each decision
records the policy in force (its id), and a decision is refused while ``tether.toml``'s policy
differs from the last one recorded (``tether model policy apply`` records it, signed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tether import signing
from tether._paths import check_link, check_path, check_paths
from tether.config import read_project
from tether.errors import GitError, TetherError, UnsafePathError, UsageError
from tether.errors import RegistryError as RegistryError  # re-exported: the tree is in errors.py
from tether.events import Event, EventLog
from tether.events.gitmirror import record as mirror
from tether.gitio.repo import committer_email, git, git_maybe, is_commit
from tether.objects.lock import file_lock
from tether.registry.policy import STAGES, Facts, Policies, failed_gates, load_policies
from tether.runs import catalog
from tether.runs.index import redactor_for
from tether.workspace.repo import Workspace

LOG = "registry"
PAYLOAD_TYPE = "application/vnd.tether.registry-event+json"
SIGNED = {"model.request", "model.approve", "model.reject", "policy.change"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass
class Version:
    name: str
    number: int
    object: str
    path: str
    run: str
    record: str
    description: str
    by: str
    time: float
    commit: str | None
    stage: str | None = None
    aliases: set[str] = field(default_factory=set)
    signature: str | None = None  # the envelope object of `tether model sign`
    signed_by: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.number}"


@dataclass
class Request:
    id: str
    name: str
    version: int
    to: str
    by: str
    comment: str
    policy: str
    status: str = "open"  # open, approved (done), rejected
    approvals: list[str] = field(default_factory=list)  # identities whose approval counted
    rejections: list[str] = field(default_factory=list)


@dataclass
class State:
    models: dict[str, dict[int, Version]] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    policy: str | None = None  # the id of the last recorded policy
    transitions: dict[str, int] = field(default_factory=dict)  # "NAME#STAGE" -> how many
    head: str | None = None  # the last event folded in

    def version(self, name: str, number: int) -> Version:
        found = self.models.get(name, {}).get(number)
        if found is None:
            known = ", ".join(f"v{n}" for n in sorted(self.models.get(name, {}))) or "none"
            raise RegistryError(f"{name} has no version v{number} (versions: {known})")
        return found

    def resolve(self, spec: str) -> Version:
        """``NAME@vN``, ``NAME@N``, ``NAME@STAGE``, ``NAME@ALIAS`` or ``NAME`` (the newest)."""
        name, _, at = spec.partition("@")
        versions = self.models.get(name)
        if not versions:
            raise RegistryError(f"no model {name!r} is registered: `tether model register {name}`")
        if not at:
            return versions[max(versions)]
        number = at[1:] if at.startswith("v") else at
        if number.isdigit():
            return self.version(name, int(number))
        for v in versions.values():
            if v.stage == at or at in v.aliases:
                return v
        raise RegistryError(f"{name} has no version in stage or alias {at!r}")


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


STATE_CACHE = "registry-state.json"  # in .tether/cache: the fold up to a head, for speed only


def load_state(ws: Workspace) -> State:
    """The fold of the log. The fold up to some head is kept in the cache, so a command reads
    only the events after it (the cache is keyed by that head's id: nothing stale survives)."""
    log = event_log(ws)
    head = log.head()
    cached = _read_state(ws)
    if cached is not None and cached.head == head:
        return cached
    newer = log.events_after(cached.head) if cached is not None and cached.head else None
    state = cached if newer is not None and cached is not None else State()
    for ev in newer if newer is not None else log.events():
        _apply(state, ev)
    state.head = head
    _write_state(ws, state)
    return state


def _read_state(ws: Workspace) -> State | None:
    try:
        doc = json.loads((ws.dot / "cache" / STATE_CACHE).read_bytes())
        if doc.get("format") != 1:
            return None
        state = State(head=doc["head"], policy=doc["policy"], transitions=doc["transitions"])
        for name, versions in doc["models"].items():
            state.models[name] = {
                int(n): Version(**{**v, "aliases": set(v["aliases"])}) for n, v in versions.items()
            }
        state.requests = {k: Request(**r) for k, r in doc["requests"].items()}
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or an older one: fold from the start


def _write_state(ws: Workspace, state: State) -> None:
    from dataclasses import asdict

    from tether._fs import write_cache

    doc = {
        "format": 1,
        "head": state.head,
        "policy": state.policy,
        "transitions": state.transitions,
        "models": {
            name: {str(n): {**asdict(v), "aliases": sorted(v.aliases)} for n, v in vs.items()}
            for name, vs in state.models.items()
        },
        "requests": {k: asdict(r) for k, r in state.requests.items()},
    }
    write_cache(ws.dot / "cache" / STATE_CACHE, json.dumps(doc).encode())


def _apply(state: State, ev: Event) -> None:
    b = ev.body
    if ev.kind == "model.register":
        state.models.setdefault(b["name"], {})[int(b["version"])] = Version(
            b["name"], int(b["version"]), b["object"], b["path"], b["run"], b["record"],
            b.get("description", ""), ev.actor, ev.time, b.get("commit"),
        )  # fmt: skip
    elif ev.kind == "model.request":
        state.requests[ev.id] = Request(
            ev.id, b["name"], int(b["version"]), b["to"], ev.actor, b.get("comment", ""),
            b.get("policy", ""),
        )  # fmt: skip
    elif ev.kind in ("model.approve", "model.reject"):
        req = state.requests[b["request"]]
        if ev.kind == "model.approve" and b.get("counted", True):
            req.approvals.append(ev.actor)
        if ev.kind == "model.reject":
            req.rejections.append(ev.actor)
            req.status = "rejected"
    elif ev.kind == "model.transition":
        versions = state.models[b["name"]]
        for v in versions.values():
            if v.stage == b["stage"]:
                v.stage = None  # one version per stage
        versions[int(b["version"])].stage = b["stage"]
        key = f"{b['name']}#{b['stage']}"
        state.transitions[key] = state.transitions.get(key, 0) + 1
        if b.get("request") in state.requests:
            state.requests[b["request"]].status = "approved"
    elif ev.kind == "model.alias":
        for v in state.models[b["name"]].values():
            v.aliases.discard(b["alias"])
        if b.get("version") is not None:
            state.models[b["name"]][int(b["version"])].aliases.add(b["alias"])
    elif ev.kind == "model.sign":
        v = state.models[b["name"]][int(b["version"])]
        v.signature, v.signed_by = b["envelope"], ev.actor
    elif ev.kind == "policy.change":
        state.policy = b["policy_id"]


# -- appending -------------------------------------------------------------------------------
def append(ws: Workspace, kind: str, body: dict[str, Any], *, sign: bool | None = None) -> Event:
    """Append one registry event; signed by the local key (required for decisions). The
    actor is the identity the key is trusted for, never a name the user typed."""
    redactor = redactor_for(ws)  # the project's own rules too: what is signed is what is kept
    body = {k: redactor.redact(v) if isinstance(v, str) else v for k, v in body.items()}
    must_sign = kind in SIGNED if sign is None else sign
    actor = committer_email(ws.root) or "unknown"
    signer: Any = None
    if must_sign:
        signer, identity = local_signer(ws)
        payload = json.dumps({"kind": kind, **body}, sort_keys=True).encode()
        body = {**body, "signed": signer.sign(PAYLOAD_TYPE, payload)}
        actor = identity
    log = event_log(ws)
    ev = log.append(kind, body, actor=actor)
    mirror(ws.root, log, ev)
    if must_sign:
        sign_head(ws, ev, signer)
    return ev


HEAD_REF = f"refs/tether/heads/{LOG}"
HEAD_TYPE = "application/vnd.tether.log-head+json"


def sign_head(ws: Workspace, ev: Event, signer: Any) -> None:
    """The chain head, signed, as a git ref (a blob) pushed with the repository: cutting off the
    newest events is then caught, since the signed head would name an event that is gone."""
    doc = {"log": LOG, "head": ev.id, "seq": ev.seq, "time": ev.time}
    envelope = signer.sign(HEAD_TYPE, json.dumps(doc, sort_keys=True).encode())
    blob = git(ws.root, "hash-object", "-w", "--stdin", stdin=json.dumps(envelope).encode())
    git(ws.root, "update-ref", HEAD_REF, blob.decode().strip())


def signed_head(ws: Workspace) -> tuple[dict[str, Any], str] | None:
    """The signed head's document and the identity that signed it (None when there is none)."""
    if git_maybe(ws.root, "rev-parse", "--verify", "-q", HEAD_REF) is None:
        return None
    raw = git(ws.root, "cat-file", "blob", HEAD_REF)
    checked = signing.verify(json.loads(raw), signing.trusted_keys(project_config(ws)))
    if checked.payload_type != HEAD_TYPE:
        raise RegistryError(f"{HEAD_REF} does not hold a signed log head")
    doc: dict[str, Any] = json.loads(checked.payload)
    return doc, checked.signer.identity


def local_signer(ws: Workspace) -> tuple[Any, str]:
    """This machine's signing key and the identity tether.toml trusts it for (or a refusal)."""
    signer = signing.load_signer()
    trusted = signing.trusted_keys(project_config(ws)).get(signer.keyid)
    if trusted is None:
        raise RegistryError(
            f"your key {signer.keyid} is not trusted in tether.toml: ask an admin to run "
            f"`tether keys trust KEY.pub --identity YOU` (registry decisions are signed)"
        )
    return signer, trusted.identity


def verify_event(
    ws: Workspace, ev: Event, trusted: dict[str, signing.TrustedKey] | None = None
) -> str | None:
    """A problem with a signed event's signature, or None: the envelope verifies with a trusted
    key, says what the event says, and its key's identity is the event's actor."""
    env = ev.body.get("signed")
    if env is None:
        return f"event {ev.seq} ({ev.kind}) is not signed" if ev.kind in SIGNED else None
    if trusted is None:
        trusted = signing.trusted_keys(project_config(ws))
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


# -- the verbs -------------------------------------------------------------------------------
def register(ws: Workspace, name: str, run_ref: str, path: str, description: str = "") -> Version:
    """Version N+1 of ``name``: the object the run recorded for ``path`` (an output or an
    artifact), with the run's four pillars attached by reference."""
    _check(name, "model name")
    if not path.strip():
        raise UsageError(
            "the model's path is empty: give the file or folder the run recorded (`--path "
            "model.pkl`); `tether runs show RUN` lists its outputs and artifacts"
        )
    run_id = catalog.resolve(ws, run_ref)
    record = catalog.load(ws, run_id)
    data = record.get("data") or {}
    found = {**(data.get("outputs") or {}), **(record.get("artifacts") or {})}
    oid = found.get(path)
    if oid is None:
        known = ", ".join(sorted(found)) or "none"
        raise RegistryError(f"run {run_id[:13]} recorded no output {path!r} (it recorded: {known})")
    record_id = ws.refs.get(f"runs/{run_id}")
    if record_id is None:
        raise RegistryError(f"run {run_id[:13]} is still running: register it once it has ended")
    try:  # a version is only what `model get` will write: its files are checked the same way
        version_files(ws, oid, path, f"run {run_id[:13]}'s {path!r}")
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"{exc}; Tether registers no version whose files it would refuse to write: fix "
            "the run's output and record a new run"
        ) from None
    with writing(ws) as state:
        number = max(state.models.get(name, {}), default=0) + 1
        commit = (record.get("code") or {}).get("commit")
        body = {
            "name": name, "version": number, "object": oid, "path": path, "run": run_id,
            "record": record_id[0], "description": description, "commit": commit,
        }  # fmt: skip
        ev = append(ws, "model.register", body, sign=_has_key(ws))
        ws.refs.set(f"registry/{name}/v{number}", [oid, record_id[0]])
        _tag(
            ws,
            f"{name}@v{number}",
            commit,
            f"register {name}@v{number}\n\nobject: {oid}\nevent: {ev.id}\n",
        )
    return load_state(ws).version(name, number)


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


def _has_key(ws: Workspace) -> bool:
    """A local key that this project trusts (events are signed when there is one)."""
    try:
        signer = signing.load_signer()
    except TetherError:
        return False
    return signer.keyid in signing.trusted_keys(project_config(ws))


def _tag(ws: Workspace, tag: str, commit: str | None, message: str) -> None:
    """The git mirror of a registry step: an annotated tag on the run's commit (skipped when
    that commit is not in this repository)."""
    if commit and is_commit(ws.root, commit):
        git(ws.root, "tag", "-a", "-f", tag, "-m", message, commit)


def facts(ws: Workspace, state: State, v: Version) -> Facts:
    record = catalog.load(ws, v.run)
    metrics = {k: float(m["last"]) for k, m in (record.get("metrics") or {}).items()}
    found = catalog.search(
        ws, f"tags.reproduction_of = '{v.run}' and tags.verdict = 'REPRODUCED'", None, 1
    )
    signed = v.signature is not None and _signature_ok(ws, v)
    return Facts(bool((record.get("code") or {}).get("dirty")), bool(found), signed, metrics)


def _signature_ok(ws: Workspace, v: Version) -> bool:
    try:
        envelope = json.loads(ws.store.read_bytes(v.signature or ""))
        signing.verify(envelope, signing.trusted_keys(project_config(ws)))
    except (TetherError, ValueError, OSError):
        return False
    return True


def _policies(ws: Workspace, state: State) -> Policies:
    policies = load_policies(project_config(ws))
    if state.policy != policies.id and (policies.stages or state.policy is not None):
        raise RegistryError(
            "the policy in tether.toml differs from the last one recorded: record it with "
            "`tether model policy apply` (a signed, audited event) before deciding anything"
        )
    return policies


def request(ws: Workspace, spec: str, to: str, comment: str = "") -> Request:
    if to not in STAGES:
        raise RegistryError(f"stages are {', '.join(STAGES)}; free-form names are aliases")
    with writing(ws) as state:
        v = state.resolve(spec)
        policies = _policies(ws, state)
        policy = policies.for_stage(to)
        problems = failed_gates(policy, facts(ws, state, v))
        if problems:
            raise RegistryError(f"{v.ref} cannot go to {to}: " + "; ".join(problems))
        body = {
            "name": v.name,
            "version": v.number,
            "to": to,
            "comment": comment,
            "policy": policies.id,
        }
        ev = append(ws, "model.request", body)
        req = Request(ev.id, v.name, v.number, to, ev.actor, comment, policies.id)
        if policy.approvals == 0:
            _transition(ws, state, v, to, req)
    return load_state(ws).requests[ev.id]


def find_request(state: State, spec: str) -> Request:
    """A request by id prefix, or the open request for ``NAME@VERSION``."""
    matches = [
        r
        for r in state.requests.values()
        if r.id.removeprefix("blake3:").startswith(spec.removeprefix("blake3:"))
    ]
    if len(matches) == 1:
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
        f"no request {spec!r}" if not matches else f"{spec!r} names several requests"
    )


def decide(ws: Workspace, spec: str, approve: bool, comment: str = "") -> Request:
    """Approve or reject a request. An approval counts only from a trusted key with the
    approver role whose identity the stage's policy allows (and not the requester's own, unless
    the policy says so); enough approvals and passing gates make the transition."""
    with writing(ws) as state:
        req = find_request(state, spec)
        if req.status != "open":
            raise RegistryError(f"the request {req.id[:19]} is {req.status}: nothing to decide")
        policies = _policies(ws, state)
        policy = policies.for_stage(req.to)
        signer, identity = local_signer(ws)
        key = signing.trusted_keys(project_config(ws))[signer.keyid]
        if not approve and identity != req.by and "approver" not in key.roles:
            raise RegistryError(
                f"{identity} cannot reject {req.name}@v{req.version} -> {req.to}: only an "
                "approver or the requester (withdrawing it) can"
            )
        if approve:
            why = _cannot_approve(ws, policy, req, identity, key.roles)
            if why:
                raise RegistryError(
                    f"{identity} cannot approve {req.name}@v{req.version} -> {req.to}: {why}"
                )
        kind = "model.approve" if approve else "model.reject"
        body = {"request": req.id, "name": req.name, "version": req.version, "to": req.to,
                "comment": comment, "policy": policies.id}  # fmt: skip
        append(ws, kind, body)
        if approve:
            req.approvals.append(identity)
            if len(set(req.approvals)) >= policy.approvals:
                v = state.version(req.name, req.version)
                problems = failed_gates(policy, facts(ws, state, v))
                if problems:
                    raise RegistryError(
                        f"approved, but {v.ref} cannot go to {req.to} yet: " + "; ".join(problems)
                    )
                _transition(ws, state, v, req.to, req)
    return load_state(ws).requests[req.id]


def _cannot_approve(
    ws: Workspace, policy: Any, req: Request, identity: str, roles: frozenset[str]
) -> str | None:
    if "approver" not in roles:
        return "its key does not have the approver role (`tether keys trust … --role approver`)"
    if not policy.self_approval and identity == req.by:
        return "the policy forbids approving your own request (self_approval = false)"
    if identity in req.approvals:
        return "it has approved this request already"
    if policy.approvers:
        groups = signing.groups(project_config(ws))
        if not any(signing.identity_has(identity, who, groups) for who in policy.approvers):
            return f"the {req.to} policy allows only {', '.join(policy.approvers)}"
    return None


def _transition(ws: Workspace, state: State, v: Version, stage: str, req: Request) -> None:
    before = next((x for x in state.models[v.name].values() if x.stage == stage), None)
    n = state.transitions.get(f"{v.name}#{stage}", 0) + 1
    body = {"name": v.name, "version": v.number, "stage": stage, "request": req.id,
            "replaces": before.number if before else None, "n": n}  # fmt: skip
    ev = append(ws, "model.transition", body, sign=_has_key(ws))
    ws.refs.set(f"registry/{v.name}/{stage}", [v.object])  # for lineage: NAME@STAGE
    _tag(
        ws,
        f"{v.name}#{stage}#{n}",
        v.commit,
        f"{v.ref} -> {stage}\n\nevent: {ev.id}\nrequest: {req.id}\n",
    )


def set_alias(ws: Workspace, spec: str, alias: str) -> Version:
    _check(alias, "alias")
    if alias in STAGES:
        raise RegistryError(f"{alias} is a stage: `tether model request` moves a version there")
    with writing(ws) as state:
        v = state.resolve(spec)
        append(
            ws,
            "model.alias",
            {"name": v.name, "alias": alias, "version": v.number},
            sign=_has_key(ws),
        )
        ws.refs.set(f"registry/{v.name}/{alias}", [v.object])  # for lineage: NAME@ALIAS
    return load_state(ws).version(v.name, v.number)


def apply_policy(ws: Workspace) -> str:
    """Record tether.toml's policy as the one in force (signed)."""
    policies = load_policies(project_config(ws))
    with writing(ws) as state:
        if state.policy == policies.id:
            return policies.id
        append(ws, "policy.change", {"policy_id": policies.id, "policy": policies.to_dict()})
    return policies.id


def _check(text: str, what: str) -> None:
    if not _NAME.match(text):
        raise RegistryError(f"{text!r} is not a {what} (lower-case letters, digits, - and _)")


def push(ws: Workspace, remote: str) -> None:
    """The registry's tags, its log's git mirror and its signed head, in one atomic git push
    (refused when the remote's log has moved on: pull first)."""
    from tether.events import gitmirror

    state = load_state(ws)
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
    if git_maybe(ws.root, "rev-parse", "--verify", "-q", HEAD_REF) is not None:
        refs.append(HEAD_REF)
    try:
        gitmirror.push(ws.root, remote, refs)
    except GitError as exc:
        raise RegistryError(
            f"push to {remote} refused ({str(exc).splitlines()[-1][:200]}): the remote's "
            "registry moved on; run `tether model pull` and decide again"
        ) from None


def pull(ws: Workspace, remote: str) -> int:
    from tether.events import gitmirror

    ws.store.create()
    with file_lock(ws.dot / "locks" / "registry.lock", exclusive=True, timeout=30):
        return gitmirror.fetch(ws.root, remote, event_log(ws), [HEAD_REF])


def ready(ws: Workspace) -> list[Request]:
    """Open requests this key may approve now: its identity allowed, the gates passing."""
    state = load_state(ws)
    signer, identity = local_signer(ws)
    key = signing.trusted_keys(project_config(ws))[signer.keyid]
    policies = _policies(ws, state)
    out = []
    for req in state.requests.values():
        if req.status != "open":
            continue
        policy = policies.for_stage(req.to)
        if _cannot_approve(ws, policy, req, identity, key.roles):
            continue
        if not failed_gates(policy, facts(ws, state, state.version(req.name, req.version))):
            out.append(req)
    return out
