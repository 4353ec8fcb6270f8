"""Put any stored file or folder at a path, by id: a pipeline restoring outs from its cache, a
reproduction restoring a run's inputs. What was at the path is replaced: callers first keep
anything there that the cache lacks (``keep_current``), so nothing is lost."""

from __future__ import annotations

import os

from tether._fs import remove_path
from tether.errors import MissingObjectError
from tether.objects.tree import HEADER as TREE_HEADER
from tether.workspace.repo import Workspace


def is_folder(ws: Workspace, oid: str) -> bool:
    return ws.store.read_head(oid, len(TREE_HEADER)) == TREE_HEADER


def materialize(ws: Workspace, rel: str, oid: str) -> None:
    """Make ``rel`` (repository-relative) hold exactly object ``oid``."""
    if not ws.store.has(oid):
        raise MissingObjectError([oid], hint=f"needed for {rel}: run `tether pull`")
    dest = ws.abs(ws.rel(ws.abs(rel)))  # refuses a path that leaves the repository
    modes = ws.link_modes()
    tree = ws.store.load_tree(oid) if is_folder(ws, oid) else None
    if tree is not None:  # every object is here before anything is removed
        missing = ws.store.missing(e.id for e in tree.entries if e.id)
        if missing:
            raise MissingObjectError(missing, hint=f"needed for {rel}: run `tether pull`")
    remove_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tree is None:
        ws.store.link_out(oid, str(dest), modes)
        return
    dest.mkdir(parents=True, exist_ok=True)
    for entry in tree.entries:
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.target is not None:
            os.symlink(entry.target, target)
        else:
            ws.store.link_out(entry.id, str(target), modes, entry.mode)


def keep_current(ws: Workspace, rel: str) -> str | None:
    """Store what is at ``rel`` now in the cache (a user's edit to an out, say) so replacing it
    loses nothing; its id, or None when nothing is there."""
    from tether.workspace.add import store_path

    path = ws.abs(rel)
    if not path.exists():
        return None
    return store_path(ws, path)
