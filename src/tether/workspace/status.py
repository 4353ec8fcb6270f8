"""``tether status``: what changed in the working tree since each pointer was written."""

from __future__ import annotations

from dataclasses import dataclass

from tether._types import NO_PROGRESS, Callback
from tether.objects.tree import Tree, TreeEntry, diff_trees
from tether.workspace.repo import Tracked, Workspace
from tether.workspace.scan import Look, look, resolve


@dataclass(frozen=True)
class PathStatus:
    pointer: str
    target: str
    kind: str
    state: str  # "clean", "modified" or "missing"
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    in_cache: bool = True  # False when the cache lacks the pointer's objects (`tether pull`)
    # modified files that are hard- or symlinked to their recorded object: edited in place, so
    # the cache's copy changed with them (root ignores the read-only mode that prevents this)
    cache_edited: tuple[str, ...] = ()


def current(ws: Workspace, t: Tracked, *, callback: Callback = NO_PROGRESS) -> Look | None:
    """What the tracked path holds now (None when it is gone), hashing only what changed."""
    path = ws.abs(t.target)
    if not path.exists() and not path.is_symlink():
        return None
    return look(
        path, t.target, ws.statcache, cache_dir=ws.cache_dir, jobs=ws.jobs(), callback=callback
    )


def content_id(ws: Workspace, rel: str) -> str | None:
    """The id a file or folder's content has now (None when absent), from the stat cache when
    nothing changed: what a pipeline compares with its lock."""
    path = ws.abs(rel)
    if not path.exists() and not path.is_symlink():
        return None
    return look(path, rel, ws.statcache, cache_dir=ws.cache_dir, jobs=ws.jobs()).id


def current_tree(ws: Workspace, t: Tracked, *, callback: Callback = NO_PROGRESS) -> Tree | None:
    """The tracked path as it is now, file by file (None when it is gone)."""
    now = current(ws, t, callback=callback)
    return None if now is None else tree_of(ws, t, now)


def tree_of(ws: Workspace, t: Tracked, now: Look) -> Tree:
    if now.tree is not None:
        return now.tree
    path = ws.abs(t.target)
    if path.is_dir() and ws.store.has(now.id):  # untouched since added or checked out
        return ws.store.load_tree(now.id)
    assert now.found is not None  # a snapshot hit keeps its walk: resolve it, no second walk
    return resolve(path, t.target, now.found, ws.statcache, jobs=ws.jobs()).tree


def recorded_tree(ws: Workspace, t: Tracked) -> Tree | None:
    """The tree the pointer names: its manifest, or one entry for a file (None if not cached)."""
    if t.ptr.kind == "file":
        return Tree((TreeEntry("", t.ptr.id, t.ptr.size),))
    if not ws.store.has(t.ptr.id):
        return None
    return ws.store.load_tree(t.ptr.id)


def _full(target: str, rel: str) -> str:
    return f"{target}/{rel}" if rel else target


def _join(target: str, rels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{target}/{r}" if r else target for r in rels)


def status_of(
    ws: Workspace, t: Tracked, sub: str = "", callback: Callback = NO_PROGRESS
) -> PathStatus:
    look_now = current(ws, t, callback=callback)
    in_cache = ws.store.has(t.ptr.id)  # every object's presence is `tether fsck`'s job
    if look_now is None:
        return PathStatus(t.pointer, t.target, t.ptr.kind, "missing", in_cache=in_cache)
    if look_now.id == t.ptr.id:  # untouched since it was added or checked out
        return PathStatus(t.pointer, t.target, t.ptr.kind, "clean", in_cache=in_cache)
    if t.ptr.kind == "file":
        edited = linked_to_cache(ws, {t.target: t.ptr.id})
        return PathStatus(
            t.pointer,
            t.target,
            "file",
            "modified",
            modified=(t.target,),
            in_cache=in_cache,
            cache_edited=edited,
        )
    then = recorded_tree(ws, t)
    if then is None:  # no manifest to compare file by file
        return PathStatus(t.pointer, t.target, "dir", "modified", in_cache=False)
    d = diff_trees(then.under(sub), tree_of(ws, t, look_now).under(sub))
    was = then.under(sub).by_path
    edited = linked_to_cache(ws, {_full(t.target, r): was[r].id for r in d.modified})
    return PathStatus(
        t.pointer,
        t.target,
        "dir",
        "clean" if d.clean else "modified",
        _join(t.target, d.added),
        _join(t.target, d.removed),
        _join(t.target, d.modified),
        in_cache,
        edited,
    )


def linked_to_cache(ws: Workspace, recorded: dict[str, str]) -> tuple[str, ...]:
    """The files (path -> recorded id) that are the very file of their recorded object."""
    import os

    out = []
    for rel, oid in sorted(recorded.items()):
        obj = ws.store.loose_path(oid)
        if obj is None:
            continue
        try:
            mine, cached = os.stat(ws.abs(rel)), os.stat(obj)
        except OSError:
            continue
        if (mine.st_ino, mine.st_dev) == (cached.st_ino, cached.st_dev):
            out.append(rel)
    return tuple(out)


def status(
    ws: Workspace, paths: list[str] | None = None, callback: Callback = NO_PROGRESS
) -> list[PathStatus]:
    return [status_of(ws, t, sub, callback) for t, sub in ws.select(paths)]
