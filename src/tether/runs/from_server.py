"""A teammate's run, fetched from the team server the way ``git fetch`` brings a commit: its
sealed record, amendments and tombstone, and the objects that describe it (environment, code
diff, metric history, log), each checked against its id. Then every local command (``runs
show``, ``diff``, ``lineage``, ``reproduce``) reads it as one of this clone's runs. The data it
read or wrote is not fetched: ``tether pull`` or ``reproduce`` bring that when it is needed."""

from __future__ import annotations

import json
from typing import Any

from tether._fs import atomic_write
from tether.errors import RunError
from tether.objects.refs import check_ref_name
from tether.runs.catalog import sync_index
from tether.runs.record import _collect, load_record
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
    folder = ws.dot / "servers" / where.key / "runs"
    folder.mkdir(parents=True, exist_ok=True)  # the server has it: nothing to upload
    ack = [state["record"], *sorted(state["amendments"]), state["tombstone"]]
    atomic_write(folder / run_id, json.dumps(ack).encode(), durable=False)
    sync_index(ws)
