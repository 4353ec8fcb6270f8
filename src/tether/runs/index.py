"""The run index for a workspace: SQLite at ``.tether/index.db`` unless ``index.url`` names
another database. One engine per URL per process, so a script's many runs reuse it."""

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
    return store


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
    )
