"""``tether status``: what changed in the working tree since each pointer was written."""

from __future__ import annotations

from dataclasses import dataclass

from tether._types import NO_PROGRESS, Callback
from tether.objects.tree import Tree, TreeEntry, diff_trees
from tether.workspace.repo import Tracked, Workspace
from tether.workspace.scan import resolve, scan


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


def current_tree(
    ws: Workspace, t: Tracked, *, callback: Callback = NO_PROGRESS, remember: bool = True
) -> Tree | None:
    """The tracked path as it is now (None when it is gone), hashing only what changed."""
    path = ws.abs(t.target)
    if not path.exists() and not path.is_symlink():
        return None
    res = resolve(path, t.target, scan(path), ws.statcache, jobs=ws.jobs(), callback=callback)
    if remember:
        ws.statcache.put_many(res.fresh)
    return res.tree


def recorded_tree(ws: Workspace, t: Tracked) -> Tree | None:
    """The tree the pointer names: its manifest, or one entry for a file (None if not cached)."""
    if t.ptr.kind == "file":
        return Tree((TreeEntry("", t.ptr.id, t.ptr.size),))
    if not ws.store.has(t.ptr.id):
        return None
    return ws.store.load_tree(t.ptr.id)


def _join(target: str, rels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{target}/{r}" if r else target for r in rels)


def status_of(
    ws: Workspace, t: Tracked, sub: str = "", callback: Callback = NO_PROGRESS
) -> PathStatus:
    now = current_tree(ws, t, callback=callback)
    in_cache = ws.store.has(t.ptr.id)  # every object's presence is `tether fsck`'s job
    if now is not None and not sub and t.ptr.kind == "dir" and now.id == t.ptr.id:
        return PathStatus(t.pointer, t.target, t.ptr.kind, "clean", in_cache=in_cache)
    then = recorded_tree(ws, t)
    if now is None:
        return PathStatus(t.pointer, t.target, t.ptr.kind, "missing", in_cache=in_cache)
    if t.ptr.kind == "file":
        state = "clean" if now.entries and now.entries[0].id == t.ptr.id else "modified"
        mod = (t.target,) if state == "modified" else ()
        return PathStatus(t.pointer, t.target, "file", state, modified=mod, in_cache=in_cache)
    if then is None:  # no manifest to compare file by file
        state = "clean" if now.id == t.ptr.id else "modified"
        return PathStatus(t.pointer, t.target, "dir", state, in_cache=False)
    d = diff_trees(then.under(sub), now.under(sub))
    return PathStatus(
        t.pointer,
        t.target,
        "dir",
        "clean" if d.clean else "modified",
        _join(t.target, d.added),
        _join(t.target, d.removed),
        _join(t.target, d.modified),
        in_cache,
    )


def status(
    ws: Workspace, paths: list[str] | None = None, callback: Callback = NO_PROGRESS
) -> list[PathStatus]:
    return [status_of(ws, t, sub, callback) for t, sub in ws.select(paths)]
