"""Finding runs: search, resolve a name or id prefix, load a record, rebuild the index.

Every reader first seals runs whose process died (``lifecycle.recover``), so a run is never
left showing ``running`` after a crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import (
    FormatError,
    IndexStoreError,
    MissingObjectError,
    RunError,
    UnknownRunError,
)
from tether.runs import lifecycle
from tether.runs.index import forget_index, index_url, open_index
from tether.runs.journal import read_events
from tether.runs.record import load_record, summarize, to_indexed
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from tether.meta.store import IndexedRun


def search(
    ws: Workspace,
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    *,
    include_deleted: bool = False,
) -> list[IndexedRun]:
    lifecycle.recover(ws)
    return open_index(ws).search(where, sort, limit, include_deleted=include_deleted)


@dataclass(frozen=True)
class Picked:
    """The run a reference picked. ``name`` is set when it was picked by name: ``matches`` runs
    bear it and this is the ``back``-th before the newest (``NAME~back``)."""

    id: str
    ref: str
    name: str | None = None
    matches: int = 1
    back: int = 0

    @property
    def notice(self) -> str | None:
        """What to tell the user when a bare name matched several runs; None otherwise."""
        if self.name is None or self.matches < 2 or self.ref != self.name:
            return None
        return (
            f"{self.matches} runs are named {self.name}; using the newest, {self.id}; "
            f"{self.name}~1 is the one before"
        )


def resolve(ws: Workspace, ref: str) -> str:
    """One run id for a reference (see :func:`pick`)."""
    return pick(ws, ref).id


def pick(ws: Workspace, ref: str) -> Picked:
    """The run ``ref`` names: a full id; a name (several runs with it: the newest, ``NAME~1``
    the one before, ``NAME~2``...; runs hidden by ``runs delete`` count only when no other run
    bears the name); a unique id prefix; or ``@REV``: the newest run made at git revision REV
    (``@HEAD``, ``@origin/main``), not counting pipeline parent runs."""
    lifecycle.recover(ws)
    if ref.startswith("@"):
        return Picked(_at_revision(ws, ref[1:]), ref)
    ids = open_index(ws).resolve(ref)
    if ref in ids:
        return Picked(ref, ref)
    named = _named(ws, ref)
    if named:
        return Picked(named[0], ref, ref, len(named))
    base, tilde, back = ref.rpartition("~")
    if tilde and base and back.isdigit():
        return _back(ws, ref, base, int(back))
    if not ids:
        if fetched := fetch_from_server(ws, ref):
            return Picked(fetched, ref)
        raise RunError(f"no run matches {ref!r}: `tether runs list` shows the runs")
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
        raise RunError(f"{ref!r} matches {len(ids)} runs ({shown}): give more characters of the id")
    return Picked(ids[0], ref)


def fetch_from_server(ws: Workspace, ref: str) -> str | None:
    """A run this clone lacks, found on the team server (by id, prefix or name) and fetched:
    its id, or None when no server is set or it has no such run."""
    if not ws.config.get("server.url"):
        return None
    from tether.runs.from_server import fetch_run
    from tether.teamclient import sync as team
    from tether.teamclient.client import ServerClient

    where = team.target(ws)
    if where is None:
        return None
    with ServerClient(where) as client:
        ids = client.resolve(ref)
    if len(ids) > 1:
        raise RunError(f"{ref!r} matches {len(ids)} runs on the team server: give more of the id")
    if not ids:
        return None
    fetch_run(ws, where, ids[0])
    return ids[0]


def _back(ws: Workspace, ref: str, name: str, back: int) -> Picked:
    named = _named(ws, name)
    if not named:
        raise RunError(
            f"no run matches {ref!r}: no run is named {name!r} (~N counts back among the runs "
            "of one name); `tether runs list` shows the runs"
        )
    if back >= len(named):
        one = "only 1 run is" if len(named) == 1 else f"only {len(named)} runs are"
        oldest = name if len(named) == 1 else f"{name}~{len(named) - 1}"
        raise RunError(f"{one} named {name!r}: {name} is the newest, {oldest} the oldest")
    return Picked(named[back], ref, name, len(named), back)


def _named(ws: Workspace, name: str) -> list[str]:
    """Ids of the runs named ``name``, newest first; deleted ones only if no other has it."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    found = open_index(ws).search(f"name = '{quoted}'", "started desc", None, include_deleted=True)
    kept = [r.id for r in found if not r.deleted]
    return kept or [r.id for r in found]


def _at_revision(ws: Workspace, rev: str) -> str:
    from tether.gitio import git_maybe

    sha = git_maybe(ws.root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    if sha is None:
        raise RunError(f"{rev!r} is not a git revision here: `git fetch` it first")
    commit = sha.decode().strip()
    where = f"commit = '{commit}' and status = 'finished'"
    found = [
        r
        for r in open_index(ws).search(where, "started desc", 50)
        if r.tags.get("kind") != "pipeline"
    ]
    if not found:
        raise RunError(
            f"no finished run was made at {rev} ({commit[:10]}): run it there, or `tether pull` "
            "the runs CI made"
        )
    return found[0].id


def load(ws: Workspace, run_id: str) -> dict[str, Any]:
    """The run's record (sealed) or, for a live run, what is known so far."""
    ref = ws.refs.get(f"runs/{run_id}")
    if ref is None:
        folder = lifecycle.live_root(ws) / run_id
        if folder.is_dir():
            return _live_view(folder)
        raise UnknownRunError(
            run_id,
            f"run {run_id} has no record here: a teammate's run comes from the team server "
            "(`tether server login`), or from a git remote with `tether pull`",
        )
    try:
        record = load_record(ws.store.read_bytes(ref[0]), ref[0])
    except FileNotFoundError:
        raise MissingObjectError(
            [ref[0]], hint=f"run {run_id}'s record: run `tether pull`"
        ) from None
    record["record_id"] = ref[0]
    amendments = list(_amendments(ws, run_id))
    view = to_indexed(record, ref[0], amendments)
    record["tags"] = view.tags
    record["notes"] = record.get("notes", []) + [a["note"] for a in amendments if a.get("note")]
    record["deleted"] = ws.refs.get(f"tombstones/{run_id}") is not None
    return record


def sealed(ws: Workspace, run_id: str) -> dict[str, Any] | None:
    """The run's record exactly as it was sealed, amendments (tags, notes) left out: what a
    gate may count as evidence. None for a run with no record here."""
    ref = ws.refs.get(f"runs/{run_id}")
    if ref is None or not ws.store.has(ref[0]):
        return None
    return load_record(ws.store.read_bytes(ref[0]), ref[0])


def _live_view(folder: os.PathLike[str]) -> dict[str, Any]:
    from pathlib import Path

    start = lifecycle.read_start(Path(folder))
    events = read_events(Path(folder))
    return {
        **start,
        "status": "running",
        "params": {**start["params"], **events.params},
        "tags": {**start["tags"], **events.tags},
        "metrics": summarize(events.series),
        "data": {"inputs": events.inputs, "outputs": events.outputs},
        "artifacts": events.artifacts,
        "seeds": events.seeds,
    }


def _amendments(ws: Workspace, run_id: str) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for _name, ids in ws.refs.items(f"amendments/{run_id}"):
        if ids[0] in seen:
            continue  # one amendment under two names (fetched from a server, then pulled)
        seen.add(ids[0])
        try:
            yield load_record(ws.store.read_bytes(ids[0]), ids[0])
        except (FileNotFoundError, FormatError):
            continue  # an amendment not fetched yet: the run shows without it


def indexed_view(ws: Workspace, run_id: str, record_id: str) -> IndexedRun:
    record = load_record(ws.store.read_bytes(record_id), record_id)
    deleted = ws.refs.get(f"tombstones/{run_id}") is not None
    return to_indexed(record, record_id, _amendments(ws, run_id), deleted=deleted)


@dataclass
class Reindexed:
    runs: int
    unreadable: list[str]  # runs whose record is missing or damaged: `tether pull` or `fsck`


def reindex(ws: Workspace) -> Reindexed:
    """Rebuild the index from sealed records (and live runs), in one transaction; a SQLite
    file too damaged to open is replaced by a new one."""
    url = index_url(ws)
    rows, unreadable = [], []
    for name, ids in ws.refs.items("runs"):
        row = _readable_view(ws, name[len("runs/") :], ids[0])
        if row is None:
            unreadable.append(name[len("runs/") :])
        else:
            rows.append(row)
    for folder in sorted(lifecycle.live_root(ws).glob("*/start.json")):
        rows.append(lifecycle._running_row(json.loads(folder.read_bytes())))
    try:
        # one transaction: other processes wait for it, then see the whole new index
        open_index(ws).put_runs(rows, clear=True)
    except IndexStoreError:
        if url != f"sqlite:///{ws.dot / 'index.db'}":
            raise
        _replace_sqlite(ws, rows)  # a damaged file: build a new one beside it, swap them
    lifecycle.recover(ws)  # runs whose process died are sealed `killed` in the new index
    return Reindexed(len(rows), sorted(unreadable))


def _replace_sqlite(ws: Workspace, rows: list[IndexedRun]) -> None:
    from tether.meta.store import SqlMetaStore

    forget_index(ws)
    target = ws.dot / "index.db"
    fresh = ws.dot / "index.db.new"
    for suffix in ("", "-wal", "-shm"):
        fresh.with_name(fresh.name + suffix).unlink(missing_ok=True)
    store = SqlMetaStore(f"sqlite:///{fresh}")
    store.put_runs(rows)
    store.close()
    for suffix in ("-wal", "-shm"):
        target.with_name("index.db" + suffix).unlink(missing_ok=True)
    os.replace(fresh, target)


def sync_index(ws: Workspace) -> int:
    """Index sealed runs the index lacks or knows by another record (after a pull); how many."""
    indexed = open_index(ws).indexed_records()
    touched = {name.split("/")[1] for name, _ in ws.refs.items("amendments")}
    touched |= {name.split("/")[1] for name, _ in ws.refs.items("tombstones")}
    rows = []
    for name, ids in ws.refs.items("runs"):
        run_id = name[len("runs/") :]
        if indexed.get(run_id) != ids[0] or run_id in touched:
            row = _readable_view(ws, run_id, ids[0])
            if row is not None:
                rows.append(row)
    open_index(ws).put_runs(rows)
    return len(rows)


def _readable_view(ws: Workspace, run_id: str, record_id: str) -> IndexedRun | None:
    """The index row, or None for a record that is missing or unreadable (``fsck`` reports it;
    one bad record must not stop the others from being indexed)."""
    try:
        return indexed_view(ws, run_id, record_id)
    except (FormatError, MissingObjectError, KeyError):
        return None
