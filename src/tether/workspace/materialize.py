"""Put any stored file or folder at a path, by id: a pipeline restoring outs from its cache, a
reproduction restoring a run's inputs. What was at the path is replaced: callers first keep
anything there that the cache lacks (``keep_current``), so nothing is lost."""

from __future__ import annotations

import os
from pathlib import Path

from tether._fs import remove_path
from tether._paths import WriteGuard, check_path
from tether.errors import MissingObjectError
from tether.objects.tree import HEADER as TREE_HEADER
from tether.workspace.repo import Workspace


def is_folder(ws: Workspace, oid: str) -> bool:
    return ws.store.read_head(oid, len(TREE_HEADER)) == TREE_HEADER


def materialize(ws: Workspace, rel: str, oid: str) -> None:
    """Make ``rel`` (repository-relative) hold exactly object ``oid``. ``rel`` and, for a
    folder, every path and symlink of its manifest are checked before anything is removed or
    written (:mod:`tether._paths`), and every write and delete goes through a
    :class:`WriteGuard`: never through a symlinked folder, never outside the repository."""
    check_path(rel, f"a restore of {oid}")
    if not ws.store.has(oid):
        raise MissingObjectError([oid], hint=f"needed for {rel}: run `tether pull`")
    modes = ws.link_modes()
    tree = ws.store.load_tree(oid) if is_folder(ws, oid) else None
    if tree is not None:  # every object is here before anything is removed
        tree.check_paths(f"folder manifest {oid} (for {rel})")
        missing = ws.store.missing(e.id for e in tree.entries if e.id)
        if missing:
            raise MissingObjectError(missing, hint=f"needed for {rel}: run `tether pull`")
    guard = WriteGuard(ws.root)
    there = guard.existing(rel)
    if there is not None:
        remove_path(Path(there))
    if tree is None:
        ws.store.link_out(oid, guard.file(rel), modes)
        return
    guard.folder(rel)
    for entry in tree.entries:
        target = guard.file(f"{rel}/{entry.path}")
        if entry.target is not None:
            os.symlink(entry.target, target)
        else:
            ws.store.link_out(entry.id, target, modes, entry.mode)


def keep_current(ws: Workspace, rel: str) -> str | None:
    """Store what is at ``rel`` now in the cache (a user's edit to an out, say) so replacing it
    loses nothing; its id, or None when nothing is there."""
    from tether.workspace.add import store_path

    path = ws.abs(rel)
    if not path.exists():
        return None
    return store_path(ws, path)
