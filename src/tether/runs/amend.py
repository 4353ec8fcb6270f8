"""Changing what is known about a sealed run without changing the run: amendments (tags,
notes), tombstones (deletion) and purge (dropping what only deleted runs keep alive)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from tether.runs import catalog
from tether.runs.ids import new_run_id, user
from tether.runs.index import open_index, redactor_for
from tether.runs.journal import check_key
from tether.runs.record import dump_record
from tether.workspace.repo import Workspace


def _sealed(ws: Workspace, ref: str) -> str:
    from tether.errors import RunError

    run_id = catalog.resolve(ws, ref)
    if ws.refs.get(f"runs/{run_id}") is None:
        raise RunError(f"run {run_id} is still running: tag it from inside, or wait until it ends")
    return run_id


def amend(
    ws: Workspace,
    ref: str,
    *,
    tags: Mapping[str, str] | None = None,
    untag: list[str] | None = None,
    note: str | None = None,
) -> str:
    """Record new tags (or removed ones) and a note for a sealed run; the amendment's id."""
    run_id = _sealed(ws, ref)
    redactor = redactor_for(ws)
    body = {
        "run": run_id,
        "time": time.time(),
        "user": user(),
        "tags": {
            check_key(k, "tag name"): redactor.redact_value(k, v) for k, v in (tags or {}).items()
        },
        "untag": sorted(untag or []),
        "note": redactor.redact(note) if note else None,
    }
    with ws.writing():
        oid = ws.store.put_bytes(dump_record("amendment", body))
        ws.store.barrier()
        ws.refs.set(f"amendments/{run_id}/{new_run_id()}", [oid])
    open_index(ws).put_runs([catalog.indexed_view(ws, run_id, ws.refs.get(f"runs/{run_id}")[0])])  # type: ignore[index]
    return oid


def delete(ws: Workspace, ref: str, reason: str = "") -> str:
    """Hide a run behind a tombstone (it travels with push); the run's id."""
    run_id = _sealed(ws, ref)
    body = {"run": run_id, "time": time.time(), "user": user(), "reason": reason}
    with ws.writing():
        oid = ws.store.put_bytes(dump_record("tombstone", body))
        ws.store.barrier()
        ws.refs.set(f"tombstones/{run_id}", [oid])
    open_index(ws).set_deleted([run_id])
    return run_id


@dataclass
class PurgeResult:
    runs: list[str]
    objects: int
    bytes: int
    remote_objects: int = 0
    remote_bytes: int = 0


def purge(ws: Workspace, *, dry_run: bool = False, remote: str | None = None) -> PurgeResult:
    """Drop deleted runs' records and amendments, then collect what nothing else keeps alive
    (a leaked dataset or log) here and, with ``remote``, on that remote too. The tombstones
    stay, so a pull cannot bring the runs back."""
    from tether.workspace.gc import gc, gc_remote

    gone = sorted(name.split("/", 1)[1] for name, _ in ws.refs.items("tombstones"))
    present = [r for r in gone if ws.refs.get(f"runs/{r}") is not None]
    if not dry_run:
        for run_id in present:
            ws.refs.delete(f"runs/{run_id}")
            for name, _ in list(ws.refs.items(f"amendments/{run_id}")):
                ws.refs.delete(name)
    result = gc(ws, dry_run=dry_run)
    out = PurgeResult(present, result.removed, result.bytes)
    if remote is not None:
        from tether.workspace.sync import open_remote, push

        push(ws, remote or None)  # the tombstones go first: other clones learn of the deletion
        target = open_remote(ws, remote or None)
        theirs = target.list_refs()
        doomed = [
            name
            for name in theirs
            if any(name == f"runs/{r}" or name.startswith(f"amendments/{r}/") for r in gone)
        ]
        out.runs = sorted(set(present) | {n.split("/")[1] for n in doomed})
        if not dry_run:
            target.delete([f"refs/{name}" for name in doomed])
        far = gc_remote(ws, remote or None, dry_run=dry_run)
        out.remote_objects, out.remote_bytes = far.removed, far.bytes
    return out
