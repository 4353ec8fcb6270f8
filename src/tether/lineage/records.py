"""Run records as every lineage export reads them: which runs, their times, their job names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tether.lineage import lookup
from tether.runs import catalog, lifecycle
from tether.workspace.repo import Workspace


def selected_records(ws: Workspace, refs: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The records of ``refs`` (ids, prefixes or names), or of every run the index shows, oldest
    first. Runs still going are left out: their inputs and outputs are not final."""
    lifecycle.recover(ws)
    ids = [catalog.resolve(ws, r) for r in refs] if refs else lookup.run_ids(lookup.index_for(ws))
    records = [catalog.load(ws, rid) for rid in dict.fromkeys(ids)]
    return [r for r in records if r.get("status") != "running"]


def iso_time(ts: float | None) -> str | None:
    """Seconds since the epoch as ISO 8601 in UTC (``2024-05-01T12:00:00.123456+00:00``)."""
    return None if ts is None else datetime.fromtimestamp(float(ts), UTC).isoformat()


def job_name(record: Mapping[str, Any]) -> str:
    """What a run is an instance of, stable from one run to the next: ``experiment/stage`` for a
    pipeline stage, else ``experiment/name``."""
    tags = record.get("tags") or {}
    what = tags.get("stage") or record.get("name") or record["id"]
    return f"{record.get('experiment') or 'default'}/{what}"
