"""Reading the working tree: walk a tracked path, and give every file its id.

Ids come from the stat cache when (inode, size, mtime, ctime) are unchanged; the rest are hashed
in parallel (and, when adding, stored in the same pass, so each new file is read once).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tether._types import NO_PROGRESS, Callback
from tether.errors import PathError
from tether.hashing import BIG_FILE, hash_bytes, hash_file
from tether.objects.store import TEMP_SUFFIX
from tether.objects.tree import SYMLINK_MODE, Tree, TreeEntry, file_mode
from tether.workspace.statcache import StatCache


class Found(NamedTuple):
    rel: str  # relative to the scanned root ("" when the root is a file)
    st: os.stat_result
    target: str | None = None  # symlink target


SPECIAL_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def refuse_special(path: str | os.PathLike[str], st: os.stat_result) -> None:
    """Data is regular files (and folders of them): reading a FIFO, a socket or a device would
    wait forever or never end, so such a path is refused, named, before anything reads it."""
    kind = SPECIAL_KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is not None:
        raise PathError(
            f"{os.fspath(path)} is {kind}, not a file or folder: Tether records regular files "
            "only; give the file the data ends up in instead"
        )


def scan(path: Path, cache: str | None = None) -> list[Found]:
    """Files (and in-folder symlinks) under ``path``; a symlink that leaves it is an error,
    unless it points into ``cache`` (symlink link mode): then it stands for the file. FIFOs,
    sockets and devices inside a folder are left out, as git leaves them; ``path`` itself being
    one is an error (:func:`refuse_special`)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        refuse_special(path, st)
        if stat.S_ISLNK(st.st_mode) and os.path.isdir(path):
            raise PathError(
                f"{path} is a symlink to a folder ({os.readlink(path)}): Tether tracks a real "
                "folder, never one through a link; replace the link with the folder"
            )
        return [Found("", st)]
    out: list[Found] = []
    root = os.fspath(path)
    real_root = os.path.realpath(root)
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.endswith(TEMP_SUFFIX):
                    continue  # a killed checkout's leftover, not data
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                elif entry.is_symlink():
                    if cache and os.path.realpath(entry.path).startswith(cache + "/"):
                        out.append(Found(rel, os.stat(entry.path)))
                        continue
                    out.append(
                        Found(rel, entry.stat(follow_symlinks=False), _link(entry, real_root))
                    )
                elif entry.is_file(follow_symlinks=False):
                    out.append(Found(rel, entry.stat(follow_symlinks=False)))
    return out


def _link(entry: os.DirEntry[str], real_root: str) -> str:
    target = os.readlink(entry.path)
    resolved = os.path.realpath(os.path.join(os.path.dirname(entry.path), target))
    if os.path.isabs(target) or not (resolved + "/").startswith(real_root + "/"):
        raise PathError(
            f"{entry.path} is a symlink to {target}, outside the tracked folder: replace it "
            "with the file itself (or track its target instead)"
        )
    return target


def key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# what to do with a file the stat cache does not know: hash it (and maybe store it); returns id
Hasher = Callable[[Path, os.stat_result], str]


def hash_only(path: Path, st: os.stat_result) -> str:
    if st.st_size >= BIG_FILE:
        return hash_file(path, st.st_size)
    with open(path, "rb") as f:
        return hash_bytes(f.read())


# File times come from a coarse clock (one tick, up to 10 ms): a file changed within a tick of
# when we looked could change again with the same stat. Such "racily clean" files (git's term)
# are not remembered, so they are hashed again next time.
RACY_NS = 50_000_000


def _worth_threads(todo: list[Found]) -> bool:
    """Threads pay off when files are big enough for hashing and copying to outweigh the
    interpreter lock; for many small files one thread is faster and lighter (measured on 20k
    files of 4 KiB: 2.3 s and 97 MiB on one thread, 2.7 s and 133 MiB on eight)."""
    return sum(f.st.st_size for f in todo) >= len(todo) * (256 << 10)


def fingerprint(found: list[Found]) -> str:
    """One hash over every file's path, stat and link target: equal fingerprints mean nothing
    under the path was touched (the stat cache's rule, applied to the whole folder at once)."""
    lines = sorted(
        f"{rel}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_mode}\0"
        f"{target or ''}"
        for rel, st, target in found
    )
    return hash_bytes("\n".join(lines).encode())


@dataclass
class Resolved:
    tree: Tree
    # repository-relative path -> (ino, size, mtime, ctime, id) rows to remember
    fresh: list[tuple[str, int, int, int, int, str]]
    hashed: int  # files that had to be read
    settled: bool = True  # False when a file changed while it was read

    @property
    def id(self) -> str:
        """The folder's manifest id, or a single file's own id."""
        only = self.tree.entries
        return only[0].id if len(only) == 1 and only[0].path == "" else self.tree.id


@dataclass
class Look:
    """What a tracked path holds now."""

    id: str
    tree: Tree | None  # None when the snapshot said nothing changed (nothing was resolved)
    hashed: int = 0
    found: list[Found] | None = None  # what the walk saw, to resolve later without a new walk


def look(
    path: Path,
    rel: str,
    cache: StatCache,
    *,
    hasher: Hasher = hash_only,
    jobs: int = 8,
    callback: Callback = NO_PROGRESS,
    trust_snapshot: bool = True,
    cache_dir: str | None = None,
) -> Look:
    """The id of ``path`` from its snapshot when untouched; otherwise resolve it file by file
    (hashing only what changed) and take a new snapshot."""
    found = scan(path, cache_dir)
    seen = fingerprint(found)
    snap = cache.snapshot(rel) if trust_snapshot else None
    if snap is not None and snap[0] == seen:
        return Look(snap[1], None, found=found)
    res = resolve(path, rel, found, cache, hasher=hasher, jobs=jobs, callback=callback)
    cache.put_many(res.fresh)
    if res.settled:
        cache.put_snapshot(rel, seen, res.id)
    return Look(res.id, res.tree, res.hashed)


def resolve(
    base: Path,
    base_rel: str,
    found: list[Found],
    cache: StatCache,
    *,
    hasher: Hasher = hash_only,
    jobs: int = 8,
    callback: Callback = NO_PROGRESS,
) -> Resolved:
    """Give every found file an id: from the stat cache when its stat is unchanged, else hashed."""
    rows = cache.under(base_rel)
    entries: list[TreeEntry] = []
    todo: list[Found] = []
    prefix = base_rel + "/"
    append = entries.append
    for f in found:  # the hot loop of `status`: kept flat
        rel, st, target = f
        if target is not None:
            data = target.encode()
            append(TreeEntry(rel, hash_bytes(data), len(data), SYMLINK_MODE, target))
            continue
        row = rows.get(prefix + rel if rel else base_rel)
        if (
            row is not None
            and row[1] == st.st_ino
            and row[2] == st.st_size
            and row[3] == st.st_mtime_ns
            and row[4] == st.st_ctime_ns
        ):
            append(TreeEntry(rel, row[5], st.st_size, 0o755 if st.st_mode & 0o100 else 0o644))
        else:
            todo.append(f)
    callback.set_size(len(found))
    callback.relative_update(len(found) - len(todo))
    fresh: list[tuple[str, int, int, int, int, str]] = []
    settled = True

    def work(batch: list[Found]) -> list[tuple[Found, str, os.stat_result]]:
        out = []
        for f in batch:
            path = base / f.rel if f.rel else base
            oid = hasher(path, f.st)
            out.append((f, oid, os.stat(path)))  # ctime moves when a hardlinked file is chmod-ed
        callback.relative_update(len(batch))
        return out

    batches = [todo[i : i + 64] for i in range(0, len(todo), 64)]
    if len(batches) <= 1 or not _worth_threads(todo):
        results = [work(b) for b in batches]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(work, batches))
    racy_after = time.time_ns() - RACY_NS
    for batch in results:
        for f, oid, st in batch:
            full = f"{base_rel}/{f.rel}" if f.rel else base_rel
            entries.append(TreeEntry(f.rel, oid, f.st.st_size, file_mode(st.st_mode)))
            unchanged = key(st)[:3] == key(f.st)[:3]  # not touched while we read it
            if unchanged and max(st.st_mtime_ns, st.st_ctime_ns) < racy_after:
                fresh.append((full, *key(st), oid))
            else:
                settled = False
    return Resolved(Tree.build(entries), fresh, len(todo), settled)
