"""The run index for a workspace: SQLite at ``.tether/index.db`` unless ``index.url`` names
another database. One engine per URL per process, so a script's many runs reuse it.

A writer in a hurry (``tether repro`` sealing its stages) may *defer*: it appends the sealed
run's id and record to ``.tether/index.pending`` instead of loading SQLAlchemy, and the next
process that opens the index indexes them first. The records are the truth either way; the
queue only decides when the cache hears of them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tether.redact import Redactor
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from tether.meta.store import MetaStore

_open: dict[str, MetaStore] = {}


def index_url(ws: Workspace) -> str:
    url = str(ws.config.get("index.url") or "")
    return url or f"sqlite:///{ws.dot / 'index.db'}"


_inodes: dict[str, int] = {}


def open_index(ws: Workspace) -> MetaStore:
    from tether.meta.store import SqlMetaStore

    url = index_url(ws)
    store = _open.get(url)
    if store is not None and url.startswith("sqlite:///") and _inode(url) != _inodes.get(url):
        store.close()  # another process replaced a damaged file: never write to the old one
        store = None
    if store is None:
        store = _open[url] = SqlMetaStore(url)
        _inodes[url] = _inode(url)
    _drain(ws, store)
    return store


PENDING = "index.pending"


def defer(ws: Workspace, run_id: str, record_id: str) -> None:
    """Queue a sealed run for the index (one append; no SQLAlchemy in this process)."""
    fd = os.open(ws.dot / PENDING, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{run_id}\t{record_id}\n".encode())
    finally:
        os.close(fd)


def _drain(ws: Workspace, store: MetaStore) -> None:
    """Index what deferring writers queued. The queue is renamed first, so two processes
    never index it twice, and a writer appending meanwhile starts a new one."""
    queue = ws.dot / PENDING
    if not queue.exists():
        return
    taken = queue.with_name(f"{PENDING}.{os.getpid()}-{os.urandom(3).hex()}")
    try:
        os.rename(queue, taken)
    except FileNotFoundError:
        return  # another process took it
    from tether.errors import FormatError, MissingObjectError
    from tether.runs.record import load_record, to_indexed

    rows = []
    for line in taken.read_text().splitlines():
        _run, _, record_id = line.partition("\t")
        try:
            rows.append(
                to_indexed(load_record(ws.store.read_bytes(record_id), record_id), record_id)
            )
        except (FormatError, MissingObjectError, KeyError, ValueError):
            continue  # a torn line: `tether reindex` finds the run from its ref
    store.put_runs(rows)
    taken.unlink()


def _inode(url: str) -> int:
    try:
        return os.stat(url[len("sqlite:///") :]).st_ino
    except OSError:
        return -1


def forget_index(ws: Workspace) -> None:
    """Drop this process's engine (after the index file was replaced)."""
    store = _open.pop(index_url(ws), None)
    if store is not None:
        store.close()


def redactor_for(ws: Workspace) -> Redactor:
    cfg = ws.config
    return Redactor(
        extra_patterns=[str(p) for p in cfg.get("redact.patterns") or []],
        extra_keys=[str(k) for k in cfg.get("redact.keys") or []],
        allow=[str(a) for a in cfg.get("redact.allow") or []],
    )
