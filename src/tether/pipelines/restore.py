"""Stored outs put back in the working tree (from ``pipeline.lock``'s ids or the run cache, which
remotes share: content from others). Every path is checked as git checks a tree's paths, a
folder's own paths and symlinks with it, before anything is written; each write then goes
through a :class:`~tether._paths.WriteGuard`, so a symlink on the way cannot redirect it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tether._paths import WriteGuard, check_link, check_path, check_paths
from tether.workspace.materialize import is_folder, materialize
from tether.workspace.repo import Workspace


def check_stored(ws: Workspace, items: Mapping[str, str], where: str) -> None:
    """Each path of ``items`` (path -> object id) safe to write, and each stored folder's own
    paths and symlink targets safe inside it; else :class:`UnsafePathError` naming ``where``."""
    for path in items:
        check_path(path, where)
    for path, oid in items.items():
        if ws.store.has(oid) and is_folder(ws, oid):
            check_folder(ws, oid, f"{where} (its folder {path})")


_SAFE: set[str] = set()  # folders found safe: an id names the same entries for ever


def check_folder(ws: Workspace, oid: str, where: str) -> None:
    """A stored folder's own paths and symlinks, checked as a manifest's are (once per
    process: a plan and the restore that follows it check a 100k-file folder once)."""
    if oid in _SAFE:
        return
    entries = ws.store.load_tree(oid).entries
    check_paths((e.path for e in entries), where)
    for e in entries:
        if e.target is not None:
            check_link(e.path, e.target, where)
    if len(_SAFE) > 4096:  # a long-lived process (the server) keeps a bounded memory
        _SAFE.clear()
    _SAFE.add(oid)


def put(ws: Workspace, guard: WriteGuard, path: str, oid: str) -> None:
    """Make the checked ``path`` hold ``oid``, its folders checked as it is written: a symlink
    at the path itself is replaced, never written through."""
    dest = Path(guard.file(path))
    if dest.is_symlink():
        dest.unlink()
    materialize(ws, path, oid)
