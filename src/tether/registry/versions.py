"""Registering versions, aliases, and the evidence a CI key signs about a version's run."""

from __future__ import annotations

from tether.errors import RegistryError, UnsafePathError, UsageError
from tether.registry.fold import EVIDENCE
from tether.registry.policy import STAGES, Facts
from tether.registry.state import State, Version
from tether.registry.store import (
    append,
    check_name,
    has_key,
    load_state,
    tag,
    version_files,
    writing,
)
from tether.runs import catalog
from tether.workspace.repo import Workspace


def register(ws: Workspace, name: str, run_ref: str, path: str, description: str = "") -> Version:
    """Version N+1 of ``name``: the object the run recorded for ``path`` (an output or an
    artifact), with the run's four pillars attached by reference."""
    check_name(name, "model name")
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
    from tether.runs.from_server import bring_object

    bring_object(ws, oid)  # a teammate's run: what it wrote is on the team server
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
        ev = append(ws, "model.register", body, sign=has_key(ws), state=state)
        message = f"register {name}@v{number}\n\nobject: {oid}\nevent: {ev.id}\n"
        tag(ws, f"{name}@v{number}", commit, message)
    return load_state(ws).version(name, number)


def set_alias(ws: Workspace, spec: str, alias: str) -> Version:
    check_name(alias, "alias")
    if alias in STAGES:
        raise RegistryError(f"{alias} is a stage: `tether model request` moves a version there")
    with writing(ws) as state:
        v = state.resolve(spec)
        body = {"name": v.name, "alias": alias, "version": v.number}
        append(ws, "model.alias", body, sign=has_key(ws), state=state)
    return load_state(ws).version(v.name, v.number)


def facts(ws: Workspace, v: Version) -> Facts:
    """What the release gates look at, read from this clone's runs: the run's record (its
    uncommitted-changes flag and last metric values) and a reproduction that said REPRODUCED
    (the sealed record's own fields, never a tag added afterwards)."""
    record = catalog.load(ws, v.run)
    metrics = {k: float(m["last"]) for k, m in (record.get("metrics") or {}).items()}
    found = catalog.search(
        ws, f"tags.reproduction_of = '{v.run}' and tags.verdict = 'REPRODUCED'", None, 5
    )
    reproduced = any(_sealed_verdict(ws, r.id, v.run) for r in found)
    dirty = bool((record.get("code") or {}).get("dirty"))
    return Facts(dirty, reproduced, v.signature is not None, metrics)


def _sealed_verdict(ws: Workspace, run_id: str, of: str) -> bool:
    """The reproduction's sealed record says REPRODUCED (tags amended later do not count)."""
    record = catalog.sealed(ws, run_id) or {}
    tags = record.get("tags") or {}
    return tags.get("verdict") == "REPRODUCED" and tags.get("reproduction_of") == of


def attest(ws: Workspace, spec: str) -> tuple[Version, Facts]:
    """Sign what this clone's runs say about ``spec``'s run (a ``model.evidence`` event, by a
    key with the ``ci`` role): the facts the release gates of a root of trust count."""
    with writing(ws) as state:
        v = state.resolve(spec)
        found = facts(ws, v)
        body = {
            "name": v.name, "version": v.number, "run": v.run, "record": v.record,
            "dirty": found.dirty, "reproduced": found.reproduced, "metrics": found.metrics,
        }  # fmt: skip
        append(ws, EVIDENCE, body, sign=True, state=state)
    return load_state(ws).version(v.name, v.number), found


def latest_evidence(state: State, v: Version) -> list[str]:
    """The newest evidence event about ``v`` (what a request binds), as a list."""
    return v.evidence[-1:]
