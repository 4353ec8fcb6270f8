"""``tether checkout``: make the working tree match the pointers: a plan, then its application.

The plan is computed without touching anything (so ``--dry-run`` is free); applying it first
checks that every object it needs is in the cache, and refuses to overwrite or delete a file
whose current content is not in the cache unless forced: a checkout never loses data silently.

Pointers and manifests come from other people's clones. One that is refused (a pointer whose
``path:`` is not its sibling, a manifest that is malformed or names ``../x``, ``.git/…``, two
paths one filesystem takes for one file, a symlink leading outside) is left out of the plan
and what it tracks is left untouched; every other pointer is still checked out, then the
checkout raises :class:`UnsafePathError` naming each refusal (exit 4). Every write and delete
goes through a :class:`WriteGuard`, so a symlinked folder planted after the plan cannot
redirect one.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tether._fs import atomic_write, unique_suffix
from tether._paths import WriteGuard, check_path
from tether._types import NO_PROGRESS, Callback
from tether.errors import (
    FormatError,
    MissingObjectError,
    PathError,
    TetherError,
    UnsafePathError,
    UsageError,
)
from tether.objects.tree import Tree, TreeEntry, diff_trees
from tether.workspace.repo import Tracked, Workspace
from tether.workspace.scan import key
from tether.workspace.status import current, linked_to_cache, recorded_tree, tree_of


@dataclass(frozen=True)
class Action:
    op: str  # "write", "chmod" or "delete"
    path: str  # repository-relative
    entry: TreeEntry | None = None


@dataclass
class CheckoutPlan:
    actions: list[Action] = field(default_factory=list)
    needed: set[str] = field(default_factory=set)  # object ids the writes read
    unsaved: list[str] = field(default_factory=list)  # files whose content only exists on disk
    # journals of checkouts that were cut short: their files are ours, not the user's changes
    interrupted: list[Path] = field(default_factory=list)
    whole: bool = False  # covers every pointer (so it settles every interrupted checkout)
    # pointers and manifests refused (each error names itself and its entry): left untouched
    refused: list[TetherError] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)  # what the planned pointers track

    def count(self, op: str) -> int:
        return sum(1 for a in self.actions if a.op == op)


def _full(target: str, rel: str) -> str:
    return f"{target}/{rel}" if rel else target


def _plan_one(ws: Workspace, t: Tracked, sub: str, plan: CheckoutPlan, guard: WriteGuard) -> None:
    """Add what ``t`` needs to ``plan``, all or nothing: a refusal leaves the plan as it was."""
    _check_target(t, guard)
    look_now = current(ws, t)
    if look_now is not None and look_now.id == t.ptr.id:
        if ws.link_notice() is not None:  # as root: links made earlier become copies
            _unshare(ws, t, sub, plan)
        return  # exactly what the pointer names: nothing to read, nothing to write
    want = recorded_tree(ws, t)
    if want is None:
        raise MissingObjectError([t.ptr.id])
    if t.ptr.kind == "dir":
        want.check_paths(_manifest(t))
    want = want.under(sub)
    now = tree_of(ws, t, look_now) if look_now is not None else None
    have = now.under(sub) if now is not None else Tree(())
    if t.ptr.kind == "file" and now is not None and not Path(ws.abs(t.target)).is_file():
        raise UsageError(f"{t.target} should be a file but is a folder: move it away first")
    d = diff_trees(have, want)
    actions: list[Action] = []
    unsaved: list[str] = []
    for rel in d.added:
        actions.append(Action("write", _full(t.target, rel), want.by_path[rel]))
    for rel in d.modified:
        old, new = have.by_path[rel], want.by_path[rel]
        if t.ptr.kind == "file" and old.id == new.id:
            continue
        only_mode = (old.id, old.target) == (new.id, new.target) and not new.is_symlink
        actions.append(Action("chmod" if only_mode else "write", _full(t.target, rel), new))
        if not only_mode and not old.is_symlink and not ws.store.has(old.id):
            unsaved.append(_full(t.target, rel))
    for rel in d.removed:
        old = have.by_path[rel]
        actions.append(Action("delete", check_path(_full(t.target, rel), t.target), old))
        if not old.is_symlink and not ws.store.has(old.id):
            unsaved.append(_full(t.target, rel))
    plan.actions.extend(actions)
    plan.unsaved.extend(unsaved)


def _manifest(t: Tracked) -> str:
    return f"{t.pointer} (folder manifest {t.ptr.id})"


def _check_target(t: Tracked, guard: WriteGuard) -> None:
    """What a pointer tracks lies inside the repository: no folder on the way to it is a
    symlink, and a tracked folder is a real folder (a tracked file that is a symlink is
    replaced, never written through)."""
    path = guard.existing(t.target)
    if path is None or t.ptr.kind != "dir" or not os.path.islink(path):
        return
    raise UnsafePathError(
        f"{t.target} is a symlink (to {os.readlink(path)!r}), but {t.pointer} tracks a folder: "
        "Tether writes a folder's files only into a real folder. Remove the link (what it "
        "points to is left alone) and run again"
    )


def _unshare(ws: Workspace, t: Tracked, sub: str, plan: CheckoutPlan) -> None:
    """Plan a copy over every clean file that is still its cache object's very file (linked
    before links were refused): otherwise root's next edit would change the cache's only copy."""
    want = recorded_tree(ws, t)
    if want is None:
        return
    if t.ptr.kind == "dir":
        want.check_paths(_manifest(t))
    entries = {_full(t.target, e.path): e for e in want.under(sub).entries if not e.is_symlink}
    for path in linked_to_cache(ws, {p: e.id for p, e in entries.items()}):
        plan.actions.append(Action("write", path, entries[path]))


def plan_checkout(ws: Workspace, paths: list[str] | None = None) -> CheckoutPlan:
    plan = CheckoutPlan()
    refused: dict[str, TetherError] = {}
    guard = WriteGuard(ws.root)
    for t, sub in ws.select(paths, refused=refused):
        plan.targets.add(t.target)
        try:
            _plan_one(ws, t, sub, plan, guard)
        except (FormatError, PathError) as exc:  # this pointer's content or target: refused
            named = t.pointer in str(exc) or t.target in str(exc)
            refused[t.pointer] = exc if named else type(exc)(f"{t.pointer}: {exc}")
    plan.refused = list(refused.values())
    plan.whole = not paths and not refused  # a refused pointer's journal entries stay
    plan.needed = {
        a.entry.id for a in plan.actions if a.op == "write" and a.entry and not a.entry.is_symlink
    }
    ours: set[str] = set()
    for journal in sorted(_journals(ws).glob("checkout-*")):
        plan.interrupted.append(journal)
        ours.update(journal.read_text().splitlines())
    plan.unsaved = [p for p in plan.unsaved if p not in ours]
    return plan


def _journals(ws: Workspace) -> Path:
    return ws.dot / "journal"


@dataclass(frozen=True)
class CheckoutResult:
    written: int
    deleted: int
    chmodded: int
    notice: str | None = None  # why cache.link was not followed (root: copies, not links)


def apply_checkout(
    ws: Workspace,
    plan: CheckoutPlan,
    *,
    force: bool = False,
    callback: Callback = NO_PROGRESS,
    command: str = "checkout",
) -> CheckoutResult:
    """Carry out ``plan``; ``command`` is the one the user ran (``pull`` checks out too), for
    the message that refuses to discard unsaved changes (a state of the work tree: exit 4)."""
    absent = ws.store.missing(plan.needed)
    if absent:
        raise MissingObjectError(absent)
    if plan.unsaved and not force:
        shown = ", ".join(plan.unsaved[:3]) + (" …" if len(plan.unsaved) > 3 else "")
        fetched = " (the fetch is done: only the checkout was left)" if command == "pull" else ""
        raise PathError(
            f"{len(plan.unsaved)} file(s) have changes that exist nowhere else ({shown}), so "
            f"`tether {command}` did not replace them{fetched}: `tether add` them to keep them, "
            f"or run `tether {command} --force` to discard them"
        )
    modes = ws.link_modes()
    callback.set_size(len(plan.actions))
    guard = WriteGuard(ws.root)
    root = guard.root
    refused = [str(e) for e in plan.refused]
    deleted: set[str] = set()
    with ws.writing():
        for a in plan.actions:
            if a.op == "delete":
                try:
                    dest = guard.existing(a.path)
                except UnsafePathError as exc:
                    refused.append(str(exc))
                    continue
                if dest is not None:
                    _unlink(dest)
                deleted.add(a.path)
                callback.relative_update(1)
        writes = _guard_folders(
            guard, [a for a in plan.actions if a.op in ("write", "chmod")], refused
        )
        # new files are written in place: if this run is killed, the journal says which
        # half-written files are ours to overwrite next time
        journal = _journals(ws) / f"checkout-{unique_suffix(6)}"
        journal.parent.mkdir(exist_ok=True)
        atomic_write(journal, "\n".join(a.path for a in writes).encode())

        def apply(batch: list[Action]) -> list[tuple[str, int, int, int, int, str]]:
            rows = []
            for a in batch:
                entry = a.entry
                assert entry is not None
                dest = f"{root}/{a.path}"  # its folder was just checked by the guard
                if entry.target is not None:
                    _replace_with_symlink(Path(dest), entry.target)
                    continue
                if a.op == "chmod":
                    os.chmod(dest, entry.mode)
                    st = os.stat(dest)
                else:
                    st = _write(ws, entry, dest, modes)
                rows.append((a.path, *key(st), entry.id))
            callback.relative_update(len(batch))
            return rows

        batches = [writes[i : i + 256] for i in range(0, len(writes), 256)]
        fresh = [row for rows in _map(apply, batches, _threads(ws, writes)) for row in rows]
        _prune_empty_dirs(ws, deleted, plan.targets)
        ws.statcache.put_many(fresh)
        for done in [journal, *(plan.interrupted if plan.whole else [])]:
            done.unlink(missing_ok=True)
    chmodded = sum(1 for a in writes if a.op == "chmod")
    result = CheckoutResult(
        len(writes) - chmodded,
        len(deleted),
        chmodded,
        ws.link_notice() if writes else None,
    )
    if refused:
        raise _refusal(refused, result, command)
    return result


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _guard_folders(guard: WriteGuard, writes: list[Action], refused: list[str]) -> list[Action]:
    """Make every folder the writes go into a real folder (each checked once, here, at the
    moment of writing); writes into a folder the guard refuses are left out, and why noted."""
    blocked: set[str] = set()
    for parent in sorted({posixpath.dirname(a.path) for a in writes}):
        try:
            guard.folder(parent)
        except UnsafePathError as exc:
            if str(exc) not in refused:
                refused.append(str(exc))
            blocked.add(parent)
    if not blocked:
        return writes
    return [a for a in writes if posixpath.dirname(a.path) not in blocked]


def _refusal(refused: list[str], done: CheckoutResult, command: str) -> UnsafePathError:
    listed = "\n".join(f"  {msg}" for msg in refused)
    return UnsafePathError(
        f"`tether {command}` refused {len(refused)} item(s) and left the paths they name "
        "untouched:"
        f"\n{listed}\nEverything else was checked out ({done.written} file(s) written, "
        f"{done.deleted} removed). Restore a refused pointer with `git checkout -- POINTER` or "
        "ask whoever committed it; `tether fsck` lists every refused pointer and manifest"
    )


def _write(ws: Workspace, entry: TreeEntry, dest: str, modes: tuple[str, ...]) -> os.stat_result:
    try:
        return ws.store.link_out(entry.id, dest, modes, entry.mode)
    except IsADirectoryError:  # a folder stands where the file goes
        shutil.rmtree(dest)
        return ws.store.link_out(entry.id, dest, modes, entry.mode)


def _threads(ws: Workspace, writes: list[Action]) -> int:
    """Creating a file waits in the kernel, so a few threads overlap those waits (100k files of
    128 B: 11 s on one thread, 6-7 s on four); more only contend for the interpreter lock,
    unless the files are big."""
    big = sum(1 for a in writes if a.entry is not None and a.entry.size >= 1 << 20)
    return ws.jobs() if big >= 2 else min(4, ws.jobs())


def _map(
    fn: Callable[[list[Action]], list[tuple[str, int, int, int, int, str]]],
    batches: list[list[Action]],
    threads: int,
) -> Iterator[list[tuple[str, int, int, int, int, str]]]:
    if threads <= 1:
        return map(fn, batches)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return iter(list(pool.map(fn, batches)))


def _replace_with_symlink(dest: Path, target: str) -> None:
    tmp = dest.with_name(f".{dest.name}.tether-link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, dest)


def _prune_empty_dirs(ws: Workspace, deleted: set[str], tracked: set[str]) -> None:
    """Remove folders that deletes left empty, never above the tracked folder itself."""
    targets = {ws.abs(t) for t in tracked}
    folders = sorted({ws.abs(p).parent for p in deleted}, key=lambda p: len(p.parts), reverse=True)
    for path in folders:
        while (
            path not in targets
            and path != ws.root
            and not path.is_symlink()
            and path.is_dir()
            and not any(path.iterdir())
        ):
            path.rmdir()
            path = path.parent
