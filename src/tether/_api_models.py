"""The model registry's verbs, as ``Project.models`` gives them: versions, stage requests and
approvals, aliases, signed releases, the audit log. Each loads its module when first used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tether.events import Event
    from tether.events.sync import Pulled
    from tether.registry.audit import Report
    from tether.registry.policy import Facts
    from tether.registry.release import Verified
    from tether.registry.roots import Proposal
    from tether.registry.state import Request, State, Version
    from tether.trust.root import TrustRoot
    from tether.workspace.repo import Workspace


T = TypeVar("T")


def _decided(ws: Workspace, act: Callable[[], T], *, trust: bool = False) -> T:
    """A registry decision, made against the team server when one is set (it then needs it:
    ``_api_decisions``). A ``trust`` decision writes the root into the prompt log too: both
    logs are pulled first and pushed together."""
    from tether._api_decisions import Log, on_server
    from tether.errors import RegistryError
    from tether.prompts import labels
    from tether.prompts import sync as prompt_sync
    from tether.registry import store, sync

    def logs() -> list[Log]:
        registry = Log(
            store.event_log(ws),
            lambda remote: sync.pull(ws, remote),
            lambda: sync.push_spec(ws),
            RegistryError,
            after_undo=lambda: store.load_state(ws),
            objects=lambda: _signatures(ws),
        )
        if not trust:
            return [registry]
        prompts = Log(
            labels.event_log(ws),
            lambda remote: prompt_sync.pull(ws, remote),
            lambda: prompt_sync.push_spec(ws, None),
            RegistryError,
        )
        return [registry, prompts]

    with on_server(ws, logs):
        return act()


def _signatures(ws: Workspace) -> list[str]:
    """The signed release statements of every version: the team server keeps them too."""
    from tether.registry import store

    state = store.load_state(ws)
    return [v.signature for vs in state.models.values() for v in vs.values() if v.signature]


class ModelRegistry:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def register(self, name: str, run: str, path: str, description: str = "") -> Version:
        """Version N+1 of ``name``: the object ``run`` recorded for ``path``."""
        from tether._api_names import claim_model
        from tether.registry import versions

        claim_model(self.ws, name)
        return _decided(self.ws, lambda: versions.register(self.ws, name, run, path, description))

    def request(self, spec: str, to: str, comment: str = "") -> Request:
        from tether.registry import requests

        return _decided(self.ws, lambda: requests.request(self.ws, spec, to, comment))

    def decide(self, spec: str, approve: bool, comment: str = "") -> Request:
        """Approve or reject a request (``NAME@VERSION``'s open one, or its id) with your key."""
        from tether.registry import requests

        return _decided(self.ws, lambda: requests.decide(self.ws, spec, approve, comment))

    def ready(self) -> list[Request]:
        """The open requests this machine's key may approve whose release gates pass."""
        from tether.registry import requests

        return requests.ready(self.ws)

    def set_alias(self, spec: str, alias: str) -> Version:
        from tether.registry import versions

        return _decided(self.ws, lambda: versions.set_alias(self.ws, spec, alias))

    def state(self) -> State:
        """Every model, version, stage, alias and request, as the audit log says."""
        from tether.registry import store

        return store.load_state(self.ws)

    def get(self, spec: str, out: Path) -> Verified:
        from tether.registry import release

        return release.get(self.ws, spec, out)

    def sign(self, spec: str) -> Version:
        from tether.registry import release

        return _decided(self.ws, lambda: release.sign(self.ws, spec))

    def verify(self, spec: str, folder: Path | None = None) -> Verified:
        from tether.registry import release

        return release.verify(self.ws, spec, folder)

    def push(self, remote: str) -> None:
        """The registry's tags, log, signed head and checkpoint, in one atomic git push."""
        from tether.registry import sync

        sync.push(self.ws, remote)

    def pull(self, remote: str, *, discard_local: bool = False) -> Pulled:
        """Take the remote's registry log: up to date, ahead, a fast-forward, or a merge event
        joining both histories; what does not verify is refused and named. ``discard_local``
        drops this clone's unpushed events instead of merging them."""
        from tether.registry import sync

        return sync.pull(self.ws, remote, discard_local=discard_local)

    def apply_policy(self) -> str:
        from tether.registry import requests

        return _decided(self.ws, lambda: requests.apply_policy(self.ws))

    def attest(self, spec: str) -> tuple[Version, Facts]:
        """Sign what this clone's runs say about the version's run (a CI key's evidence)."""
        from tether.registry import versions

        return _decided(self.ws, lambda: versions.attest(self.ws, spec))

    def audit_log(self, model: str | None = None) -> list[Event]:
        from tether.errors import UsageError
        from tether.registry import audit

        if model is not None and model not in self.state().models:
            raise UsageError(f"no model {model!r} in the registry: `tether model list` names them")
        return audit.log(self.ws, model)

    def verify_audit(self, *, full: bool = False) -> Report:
        from tether._api_names import clashes
        from tether.prompts import labels
        from tether.registry import audit

        report = audit.verify(self.ws, full=full)
        report.problems += clashes(self.ws, report.models)
        report.problems += [f"prompts log: {why}" for why in labels.refused(self.ws)]
        return report


class RootOfTrust:
    """The project's root of trust: who holds which role, and the policies in force."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def current(self) -> TrustRoot | None:
        from tether.registry import roots

        return roots.current(self.ws)

    def init(self, *, threshold: int = 1, out: Path | None = None) -> Proposal:
        """Root version 1 from tether.toml's keys, groups and policies; this key is an admin."""
        from tether.registry import roots

        return _decided(
            self.ws, lambda: roots.init(self.ws, threshold=threshold, out=out), trust=True
        )

    def add(
        self, public_pem: str, identity: str, roles: tuple[str, ...], *, out: Path | None = None
    ) -> Proposal:
        """The next root version with this key (a key already there gets these roles)."""
        from tether.registry import roots
        from tether.signing import TrustedKey, public_key_id

        key = TrustedKey(public_key_id(public_pem), identity, frozenset(roles), public_pem)
        return _decided(self.ws, lambda: roots.change(self.ws, add=key, out=out), trust=True)

    def revoke(self, keyid: str, *, out: Path | None = None) -> Proposal:
        from tether.registry import roots

        return _decided(self.ws, lambda: roots.change(self.ws, revoke=keyid, out=out), trust=True)

    def policy(self, *, threshold: int | None = None, out: Path | None = None) -> Proposal:
        """The next root version with tether.toml's policies and groups (and a new threshold)."""
        from tether.registry import roots

        return _decided(
            self.ws,
            lambda: roots.change(self.ws, policies=True, threshold=threshold, out=out),
            trust=True,
        )

    def sign(self, path: Path) -> Proposal:
        from tether.registry import roots

        return roots.sign_file(self.ws, path)

    def publish(self, path: Path) -> Proposal:
        from tether.registry import roots

        return _decided(self.ws, lambda: roots.publish(self.ws, path), trust=True)
