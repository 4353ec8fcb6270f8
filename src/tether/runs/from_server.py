"""A teammate's run, fetched from the team server the way ``git fetch`` brings a commit: its
sealed record, amendments and tombstone, and the objects that describe it (environment, code
diff, metric history, log), each checked against its id. Then every local command (``runs
show``, ``diff``, ``lineage``, ``reproduce``) reads it as one of this clone's runs. The data it
read or wrote is not fetched: ``tether pull`` or ``reproduce`` bring that when it is needed."""

from __future__ import annotations

from typing import Any

from tether.errors import RunError
from tether.objects.refs import check_ref_name
from tether.runs.catalog import sync_index
from tether.runs.record import _collect, load_record
from tether.teamclient import sync as team
from tether.teamclient.client import ServerClient, Target
from tether.workspace.repo import Workspace


def describing(record: dict[str, Any]) -> set[str]:
    """The objects that describe a run, without the data it read or wrote."""
    found: set[str] = set()
    for key in ("env", "series", "log"):
        _collect(record.get(key), found)
    _collect((record.get("code") or {}).get("diff"), found)
    return found


def fetch_run(ws: Workspace, where: Target, run_id: str) -> None:
    check_ref_name(f"runs/{run_id}")
    with ServerClient(where) as client:
        state = client.run_state(run_id)
        heads = [state["record"], *state["amendments"], *filter(None, [state["tombstone"]])]
        got = {oid: client.get_object(oid) for oid in heads if not ws.store.has(oid)}
        data = got.get(state["record"]) or ws.store.read_bytes(state["record"])
        record = load_record(data, state["record"])
        if record.get("kind") != "run" or record.get("id") != run_id:
            raise RunError(f"the server's record for run {run_id} is another run's: refused")
        for oid in sorted(describing(record)):
            if oid not in got and not ws.store.has(oid):
                got[oid] = client.get_object(oid)
    with ws.writing():
        for oid, blob in got.items():
            ws.store.put_bytes(blob, oid)
        ws.store.barrier()
        ws.refs.set(f"runs/{run_id}", [state["record"]])
        for amendment in state["amendments"]:
            ws.refs.set(f"amendments/{run_id}/{amendment[7:23]}", [amendment])
        if state["tombstone"]:
            ws.refs.set(f"tombstones/{run_id}", [state["tombstone"]])
    held = team.RunState(state["record"], tuple(sorted(state["amendments"])), state["tombstone"])
    team.acknowledge(ws, where.key, run_id, held)  # the server has it: nothing to upload
    sync_index(ws)


def refresh(ws: Workspace, where: Target) -> list[str]:
    """Bring the notes, tags and deletions teammates added on the server to the runs this
    clone holds and the server has (a sealed record never changes, so only those): the
    runs that changed. Each object is checked against its id and must be an amendment or
    tombstone of that very run."""
    mine = team.local_states(ws)
    held = sorted(r for r in mine if team.acknowledged(ws, where.key, r) is not None)
    if not held:
        return []
    news: dict[str, tuple[list[str], str | None]] = {}
    got: dict[str, bytes] = {}
    with ServerClient(where) as client:
        for run_id, theirs in client.run_states(held).items():
            here = mine.get(run_id)
            if here is None or theirs.get("record") != here.record:
                continue  # not one of ours, or not the record we hold: nothing to merge
            added = [str(a) for a in theirs["amendments"] if a not in here.amendments]
            tombstone = None if here.tombstone else theirs.get("tombstone")
            if not added and not tombstone:
                continue
            for oid in [*added, *filter(None, [tombstone])]:
                data = ws.store.read_bytes(oid) if ws.store.has(oid) else client.get_object(oid)
                body = load_record(data, oid)
                if body.get("kind") not in ("amendment", "tombstone") or body.get("run") != run_id:
                    raise RunError(
                        f"the server's {oid[:19]}… is not a note or deletion of run {run_id}: "
                        "refused, nothing changed"
                    )
                got[oid] = data
            news[run_id] = (added, tombstone)
    with ws.writing():
        for oid, blob in got.items():
            ws.store.put_bytes(blob, oid)
        ws.store.barrier()
        for run_id, (added, tombstone) in news.items():
            for amendment in added:
                ws.refs.set(f"amendments/{run_id}/{amendment[7:23]}", [amendment])
            if tombstone:
                ws.refs.set(f"tombstones/{run_id}", [tombstone])
    now = team.local_states(ws)
    for run_id in news:
        team.acknowledge(ws, where.key, run_id, now[run_id])
    if news:
        sync_index(ws)
    return sorted(news)


def bring_object(ws: Workspace, oid: str) -> None:
    """Fetch ``oid`` (a file or a folder a run wrote) from the team server when this clone
    lacks it and a server is set; else leave it to the caller's own missing-object error."""
    if ws.store.has(oid) or not ws.config.get("server.url"):
        return
    where = team.target(ws)
    if where is not None:
        from tether.teamclient.fetch import fetch_object

        fetch_object(ws, where, oid)
