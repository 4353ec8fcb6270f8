"""``tether add``: hash, store, write the pointer, git-ignore the data."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tether._paths import check_path
from tether._types import NO_PROGRESS, Callback
from tether.errors import PathError, PointerError, UsageError
from tether.gitio.repo import POINTER_SUFFIX, ensure_ignored, git
from tether.hashing import BIG_FILE, hash_bytes, hash_file
from tether.objects.lock import file_lock
from tether.objects.packs import PackWriter
from tether.objects.store import ObjectStore
from tether.objects.tree import TreeEntry
from tether.workspace.pointer import PointerFile, pointer_path_for, read_pointer, write_pointer
from tether.workspace.repo import Workspace
from tether.workspace.scan import Hasher, Look, look, refuse_special


@dataclass(frozen=True)
class AddResult:
    target: str
    pointer: str
    id: str
    files: int
    size: int
    hashed: int  # files read because the stat cache did not know them
    unchanged: bool
    notice: str | None = None  # why cache.link was not followed (root: copies, not links)


def storing_hasher(store: ObjectStore, modes: tuple[str, ...], writer: PackWriter) -> Hasher:
    """Hash a file and put it in the cache in the same pass (small files are read once)."""

    def hasher(path: Path, st: os.stat_result) -> str:
        if st.st_size >= BIG_FILE or modes[0] in ("hardlink", "symlink"):
            oid = hash_file(path, st.st_size)
            if not store.has(oid):
                store.put_file(path, oid, modes)
            return oid
        with open(path, "rb") as f:
            data = f.read()
        oid = hash_bytes(data)
        writer.add(oid, data)  # packed when small, loose otherwise; skipped when present
        return oid

    return hasher


def check_addable(ws: Workspace, raw: str) -> str:
    if Path(raw).is_symlink():
        raise PathError(f"{raw} is a symlink: add the file or folder it points to instead")
    rel = ws.rel(raw)
    if rel.endswith(POINTER_SUFFIX):
        raise UsageError(f"{raw} is a pointer file: add the data it points to instead")
    check_path(rel, "`tether add`")  # what a pointer may track: a teammate's checkout checks it
    if not ws.abs(rel).exists():
        raise UsageError(f"{raw} does not exist")
    for t in ws.readable_pointers():  # a corrupt pointer must not stop its own re-creation
        if rel.startswith(t.target + "/"):
            raise UsageError(
                f"{raw} is inside {t.target}, which is already tracked: add {t.target} again"
            )
        if t.target.startswith(rel + "/"):
            raise UsageError(
                f"{raw} contains {t.target}, which is tracked on its own: remove "
                f"{t.pointer} first (or add only the parts you need)"
            )
    if git(ws.root, "ls-files", "--", rel).strip():
        raise UsageError(
            f"git already tracks {rel}: run `git rm -r --cached {rel}` so that Tether can track it"
        )
    return rel


def add_path(
    ws: Workspace, raw: str, *, callback: Callback = NO_PROGRESS, jobs: int = 0
) -> AddResult:
    rel = check_addable(ws, raw)
    path = ws.abs(rel)
    ws.store.create()
    with ws.writing():
        now = _store(ws, path, rel, jobs=jobs or ws.jobs(), callback=callback)
        if now.tree is not None and path.is_dir():
            # a manifest a checkout would refuse must not be published: say so now
            now.tree.check_paths(f"{rel} (being added)")
        pointer = pointer_path_for(path)
        pointer_rel = PurePosixPath(rel).with_name(pointer.name).as_posix()
        old = _existing(ws, pointer_rel)
        if now.tree is None and old is not None and old.id == now.id:
            size, files = old.size, old.files
        else:
            size, files = _counts(ws, path, now)
        kind = "dir" if path.is_dir() else "file"
        ptr = PointerFile(path=path.name, kind=kind, id=now.id, size=size, files=files)
        if ptr != old:
            write_pointer(pointer, ptr)
        with file_lock(ws.dot / "locks" / "gitignore.lock", exclusive=True):
            ensure_ignored(path.parent, path.name)
    ws.forget_pointers()
    return AddResult(
        rel, pointer_rel, now.id, files, size, now.hashed, ptr == old, ws.link_notice()
    )


def store_path(ws: Workspace, raw: str | os.PathLike[str]) -> str:
    """Store a file or folder's content in the cache without tracking it (a run's inputs,
    outputs and artifacts): its id. Inside the repository the stat cache applies, so unchanged
    data is not hashed again; a file outside it is hashed and copied."""
    path = Path(raw).absolute()
    if not path.exists():
        raise PathError(f"{raw} does not exist")
    check_storable(ws, raw)
    ws.store.create()
    with ws.writing():
        try:
            rel = ws.rel(path)
        except PathError:
            oid = hash_file(path)
            ws.store.put_file(path, oid, ("copy",))
            ws.store.barrier()
            return oid
        return _store(ws, path, rel, jobs=ws.jobs(), callback=NO_PROGRESS).id


def check_storable(ws: Workspace, raw: str | os.PathLike[str]) -> None:
    """Refuse, before anything starts, a path :func:`store_path` could not store: a FIFO, socket
    or device; a folder outside the repository; Tether's own folder or git's. A path that does
    not exist yet (a run's output) passes when what it names could be stored once written."""
    path = Path(raw).absolute()
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    if st is not None:
        refuse_special(raw, st)
    try:
        ws.rel(path)
    except PathError:
        if not _outside(ws, path):
            raise  # .tether, .git, the repository itself, a symlink that escapes
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise PathError(
                f"{raw} is a folder outside the repository: log files from outside it, "
                "or move the folder inside"
            ) from None


def _outside(ws: Workspace, path: Path) -> bool:
    """``path``, once symlinks are followed, lies outside the repository."""
    root = ws.root.resolve()
    real = path.resolve()
    return real != root and root not in real.parents


def _store(ws: Workspace, path: Path, rel: str, *, jobs: int, callback: Callback) -> Look:
    """Hash ``path`` and make every object it needs durable in the cache."""
    store = ws.store
    writer = store.pack_writer(ws.config.local_pack_threshold())
    hasher = storing_hasher(store, ws.link_modes(), writer)
    now = look(
        path, rel, ws.statcache, cache_dir=ws.cache_dir, hasher=hasher, jobs=jobs, callback=callback
    )
    is_dir = path.is_dir()
    if now.tree is None and not _all_stored(ws, now.id, is_dir):
        # untouched, but its objects are not known to be here: go file by file
        now = look(
            path,
            rel,
            ws.statcache,
            cache_dir=ws.cache_dir,
            hasher=hasher,
            jobs=jobs,
            trust_snapshot=False,
        )
    if now.tree is not None:
        writer.flush()  # first: objects still in the writer must count as stored
        if not _all_stored(ws, now.id, is_dir):
            _store_missing(store, path, now.tree.entries, hasher)
            writer.flush()
        if is_dir:
            store.put_bytes(now.tree.data, now.id)
        store.barrier()  # objects are durable before the index and the pointer name them
    if is_dir:
        ws.statcache.mark_complete(now.id)
    return now


def _all_stored(ws: Workspace, oid: str, is_dir: bool) -> bool:
    if is_dir:
        return ws.statcache.is_complete(oid) and ws.store.has(oid)
    return ws.store.has(oid)


def _counts(ws: Workspace, path: Path, now: Look) -> tuple[int, int]:
    """Bytes and files of what was added."""
    if now.tree is not None:
        return now.tree.size, len(now.tree.entries)
    if not path.is_dir():
        return path.stat().st_size, 1
    tree = ws.store.load_tree(now.id)
    return tree.size, len(tree.entries)


def _existing(ws: Workspace, pointer_rel: str) -> PointerFile | None:
    try:
        return read_pointer(ws.root, pointer_rel)
    except PointerError:
        return None  # absent or corrupt: it is (re)written


def _store_missing(
    store: ObjectStore,
    base: Path,
    entries: tuple[TreeEntry, ...],
    hasher: Callable[[Path, os.stat_result], str],
) -> None:
    """Files the stat cache knew whose objects left the cache (gc, a new cache): store again."""
    blobs = [e for e in entries if not e.is_symlink]
    absent = store.missing(e.id for e in blobs)
    for e in blobs:
        if e.id in absent:
            path = base / e.path if e.path else base
            if hasher(path, os.stat(path)) != e.id:
                raise PathError(f"{path} changed while it was being added: run `tether add` again")
            absent.discard(e.id)
