"""The registry's state: what the fold of its event log says (``fold.py``), as values, and the
cache of that fold (``.tether/cache/registry-state.json``, keyed by the head it was folded up to:
nothing stale survives, and deleting it only costs a fold)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tether.errors import RegistryError
from tether.trust.root import TrustRoot, restore, to_cache

CACHE = "registry-state.json"
CACHE_FORMAT = 5


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
    evidence: list[str] = field(default_factory=list)  # ids of model.evidence events

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
    policy: str  # the id of the stage's policy it was made under
    status: str = "open"  # open, approved (done), rejected
    approvals: list[str] = field(default_factory=list)  # identities whose approval counted
    rejections: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # the evidence events it binds


@dataclass(frozen=True)
class Refused:
    """An event the fold did not apply, and why (``tether audit verify`` names it)."""

    event: str
    seq: int
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"event {self.seq} ({self.kind}, {self.event[7:19]}) was not applied: {self.reason}"


@dataclass
class Evidence:
    """What a ``model.evidence`` event, signed by a CI key, says about a version's run."""

    id: str
    name: str
    version: int
    dirty: bool
    reproduced: bool
    metrics: dict[str, float]
    by: str


@dataclass
class State:
    models: dict[str, dict[int, Version]] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    policy: str | None = None  # without a root: the id of the last recorded policy
    transitions: dict[str, int] = field(default_factory=dict)  # "NAME#STAGE" -> how many
    head: str | None = None  # the last event folded in
    root: TrustRoot | None = None  # the root of trust in force after the last event
    roots: list[str] = field(default_factory=list)  # every root's metadata, version 1 first
    evidence: dict[str, Evidence] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)

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
        if number.isascii() and number.isdigit():  # '²' is a digit to str.isdigit, not a number
            return self.version(name, int(number))
        for v in versions.values():
            if v.stage == at or at in v.aliases:
                return v
        raise RegistryError(f"{name} has no version in stage or alias {at!r}")


_VERSION = [f.name for f in fields(Version)]
_REQUEST = [f.name for f in fields(Request)]


def read_cache(folder: Path) -> State | None:
    """The cached fold (None when there is none, or an older one)."""
    try:
        return from_doc(json.loads((folder / CACHE).read_bytes()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or an older one: fold from the start


def write_cache(folder: Path, state: State) -> None:
    from tether._fs import write_cache as write

    write(folder / CACHE, json.dumps(to_doc(state)).encode())


def from_doc(doc: dict[str, Any]) -> State | None:
    """A state from :func:`to_doc` (None for another format). Versions and requests are rows
    (their fields in order): a registry of 20,000 versions reads in a tenth of a second."""
    if doc.get("format") != CACHE_FORMAT or doc["fields"] != [_VERSION, _REQUEST]:
        return None
    state = State(head=doc["head"], policy=doc["policy"], transitions=doc["transitions"])
    for name, rows in doc["models"].items():
        versions = state.models[name] = {}
        for row in rows:
            v = Version(*row)
            v.aliases = set(v.aliases)
            versions[v.number] = v
    state.requests = {row[0]: Request(*row) for row in doc["requests"]}
    state.evidence = {k: Evidence(**e) for k, e in doc["evidence"].items()}
    state.refused = [Refused(**r) for r in doc["refused"]]
    state.roots = list(doc["roots"])
    if doc["root"] is not None:
        state.root = restore(doc["root"])
    return state


def to_doc(state: State) -> dict[str, Any]:
    """``state`` as plain JSON data (the cache's, and a checkpoint's)."""
    root = state.root
    return {
        "format": CACHE_FORMAT,
        "fields": [_VERSION, _REQUEST],
        "head": state.head,
        "policy": state.policy,
        "transitions": state.transitions,
        "models": {
            name: [_row(v, _VERSION) for _, v in sorted(vs.items())]
            for name, vs in state.models.items()
        },
        "requests": [_row(r, _REQUEST) for r in state.requests.values()],
        "evidence": {k: asdict(e) for k, e in state.evidence.items()},
        "refused": [asdict(r) for r in state.refused],
        "root": None if root is None else to_cache(root),
        "roots": state.roots,
    }


def _row(item: object, names: list[str]) -> list[object]:
    row = [getattr(item, n) for n in names]
    return [sorted(x) if isinstance(x, set) else x for x in row]
