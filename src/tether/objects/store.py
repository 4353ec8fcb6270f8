"""The local object cache: large objects loose in ``.tether/objects/ab/cdef…`` (one read-only
file each, so they can be linked into the working tree), small ones in ``.tether/packs/``.

Invariants (restic-style): an object is named by the BLAKE3 hash of its bytes, written once
through a temp file and a rename, and never changed. Writers batch their writes and call
:meth:`ObjectStore.barrier` (one ``syncfs``) before anything points at the new objects; a pack
becomes visible only when its index is written, after a barrier.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tether._fs import atomic_write, sync_filesystem, translate_write_error, unique_suffix
from tether.errors import FormatError, MissingObjectError
from tether.hashing import PREFIX, hash_bytes, hash_file, is_object_id
from tether.objects.packs import PackSet, PackWriter, make_pack
from tether.objects.tree import Tree

FORMAT = 1
FICLONE = 0x40049409  # linux/fs.h
READ_ONLY = 0o444
# temp files checkout leaves beside the files it writes (a killed checkout may leave some; status
# and add never see them)
TEMP_SUFFIX = ".tether-tmp"


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # the .tether folder (or any folder laid out the same way)
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.packs = PackSet(root / "packs", self.tmp)
        self._known_dirs: set[str] = set()
        self._dirty = False

    def close(self) -> None:
        self.packs.close()

    # -- layout ----------------------------------------------------------------------------
    def create(self) -> None:
        for folder in (self.objects, self.tmp, self.root / "refs", self.root / "locks"):
            folder.mkdir(parents=True, exist_ok=True)
        fmt = self.objects / "FORMAT"
        if not fmt.exists():
            atomic_write(fmt, f"{FORMAT}\n".encode())

    def check_format(self) -> None:
        try:
            found = (self.objects / "FORMAT").read_text().strip()
        except FileNotFoundError:
            return
        if found != str(FORMAT):
            raise FormatError(
                f"the object cache {self.objects} has format {found}; this Tether reads format "
                f"{FORMAT}: upgrade Tether"
            )

    def path(self, oid: str) -> Path:
        if not is_object_id(oid):
            raise FormatError(f"{oid!r} is not an object id (expected blake3: and 64 hex digits)")
        digest = oid[len(PREFIX) :]
        return self.objects / digest[:2] / digest[2:]

    def loose_path(self, oid: str) -> Path | None:
        """The object's own file, or None when it is packed or absent."""
        path = self.path(oid)
        return path if path.exists() else None

    def has(self, oid: str) -> bool:
        return self.path(oid).exists() or oid in self.packs.index()

    def missing(self, ids: Iterable[str]) -> set[str]:
        wanted = set(ids)
        packed = self.packs.index()
        wanted = {oid for oid in wanted if oid not in packed}
        if len(wanted) > 2000:  # one listing of the cache beats a stat per object
            return wanted - set(self.loose_ids())
        base = os.fspath(self.objects)
        return {
            oid
            for oid in wanted
            if not os.path.exists(
                f"{base}/{oid[len(PREFIX) : len(PREFIX) + 2]}/{oid[len(PREFIX) + 2 :]}"
            )
        }

    def loose_ids(self) -> Iterator[str]:
        if not self.objects.is_dir():
            return
        for sub in os.scandir(self.objects):
            if sub.is_dir() and len(sub.name) == 2:
                for entry in os.scandir(sub.path):
                    if not entry.name.startswith("."):
                        yield f"{PREFIX}{sub.name}{entry.name}"

    def iter_ids(self) -> Iterator[str]:
        """Every object, loose or packed, once."""
        loose = set(self.loose_ids())
        yield from loose
        yield from (oid for oid in self.packs.index() if oid not in loose)

    def size(self, oid: str) -> int:
        where = self.packs.index().get(oid)
        if where is not None:
            return where[2]
        try:
            return self.path(oid).stat().st_size
        except FileNotFoundError:
            raise MissingObjectError([oid]) from None

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, oid: str) -> bytes:
        if not is_object_id(oid):
            raise FormatError(f"{oid!r} is not an object id (expected blake3: and 64 hex digits)")
        digest = oid[len(PREFIX) :]
        try:  # a plain string path: this is the hot path of walking an event log
            with open(f"{self.objects}/{digest[:2]}/{digest[2:]}", "rb") as f:
                return f.read()
        except FileNotFoundError:
            data = self.packs.read(oid)
            if data is None:  # packed by another process since this one read the indexes?
                self.packs.refresh()
                data = self.packs.read(oid)
            if data is None:
                raise MissingObjectError([oid]) from None
            return data

    def read_head(self, oid: str, n: int) -> bytes:
        """The first ``n`` bytes (enough to tell a manifest or record from plain data)."""
        try:
            with open(self.path(oid), "rb") as f:
                return f.read(n)
        except FileNotFoundError:
            return self.read_bytes(oid)[:n]

    def load_tree(self, oid: str) -> Tree:
        return Tree.from_bytes(self.read_bytes(oid), oid)

    def verify(self, oid: str) -> bool:
        """True when the object's bytes still hash to its id."""
        path = self.loose_path(oid)
        if path is not None:
            return hash_file(path) == oid
        return hash_bytes(self.read_bytes(oid)) == oid

    def pack_writer(self, threshold: int, max_size: int = 4 << 20) -> PackWriter:
        """Small objects added through the writer land in packs (see ``packs.py``)."""
        return PackWriter(
            self.packs,
            self.has,
            self.put_bytes,
            self._pack_barrier,
            threshold=threshold,
            max_size=max_size,
        )

    # -- writing ---------------------------------------------------------------------------
    def _tmp_for(self, oid: str) -> tuple[Path, Path]:
        dest = self.path(oid)
        parent = dest.parent.name
        if parent not in self._known_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(parent)
        return dest, self.tmp / f"{parent}{dest.name[:8]}.{unique_suffix(4)}"

    def put_bytes(self, data: bytes, oid: str | None = None) -> str:
        """Store ``data``; no sync here: the caller calls :meth:`barrier` after its batch."""
        oid = oid or hash_bytes(data)
        dest, tmp = self._tmp_for(oid)
        if dest.exists():
            return oid
        self._dirty = True
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, READ_ONLY)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise translate_write_error(exc, dest) from exc
        return oid

    def put_file(self, src: Path, oid: str, modes: tuple[str, ...]) -> str:
        """Place the file ``src`` (already hashed to ``oid``) in the cache; returns the mode used.

        ``hardlink`` shares the inode with the working tree (both become read-only); ``copy`` and
        ``reflink`` leave the working file independent of the cache.
        """
        dest, tmp = self._tmp_for(oid)
        if dest.exists():
            return "present"
        self._dirty = True
        if modes[0] == "hardlink":  # a link appears whole: no temp file needed
            try:
                os.link(src, dest)
                os.chmod(dest, READ_ONLY)
                return "hardlink"
            except FileExistsError:
                return "present"
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES):
                    raise translate_write_error(exc, dest) from exc
                # another filesystem, or links not allowed: fall through to the next modes
        try:
            used = _place(src, tmp, modes, for_cache=True, mode=READ_ONLY)
            if used == "hardlink":
                os.chmod(tmp, READ_ONLY)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise translate_write_error(exc, dest) from exc
        return used

    def link_out(
        self, oid: str, dest: str, modes: tuple[str, ...], mode: int = 0o644
    ) -> os.stat_result:
        """Put object ``oid`` at ``dest`` in the working tree; returns the new file's stat.

        A file that exists is replaced atomically (temp file, rename). A new file is written in
        place, which saves a third of checkout's time; callers journal new files so that one
        cut short by a crash is known as theirs. Works on strings: it runs once per file.
        """
        data = self.packs.read(oid)
        if not os.path.lexists(dest):
            if data is not None:
                return _write_new(dest, data, mode)
            self._link_loose(oid, dest, modes, mode)  # a link appears whole, a copy is journalled
            return os.stat(dest)
        head, name = os.path.split(dest)
        tmp = f"{head}/.{name}.{unique_suffix(4)}{TEMP_SUFFIX}"
        try:
            if data is not None:  # a packed object: its bytes are written out (copy semantics)
                _write_new(tmp, data, mode)
            else:
                self._link_loose(oid, tmp, modes, mode)
            os.replace(tmp, dest)
        except OSError:
            _unlink(tmp)
            raise
        return os.stat(dest)

    def _link_loose(self, oid: str, tmp: str, modes: tuple[str, ...], mode: int) -> None:
        src = self.path(oid)
        if mode & 0o111:
            # a link would share the object's read-only, non-executable bits: copy instead
            modes = tuple(m for m in modes if m not in ("hardlink", "symlink")) or ("copy",)
        try:
            _place(src, Path(tmp), modes, for_cache=False, mode=mode)
        except FileNotFoundError:
            if not src.exists():
                raise MissingObjectError([oid]) from None
            raise

    def barrier(self) -> None:
        """One sync of the cache's filesystem: everything written so far is durable.

        Free when this store wrote nothing since the last barrier (syncfs would still wait
        for every other writer's dirty data on the filesystem).
        """
        if self._dirty:
            self._dirty = False
            sync_filesystem(self.objects)

    def _pack_barrier(self) -> None:
        self._dirty = True
        self.barrier()
        self._dirty = True  # the pack's index comes next: the caller's barrier covers it

    def adopt(self, path: Path, oid: str) -> None:
        """Move a file already verified to hold ``oid`` into the cache (same filesystem)."""
        dest, _ = self._tmp_for(oid)
        os.chmod(path, READ_ONLY)
        self._dirty = True
        os.replace(path, dest)

    def delete(self, oid: str) -> None:
        """Remove one object. Callers hold the store lock exclusively (see ``lock.py``)."""
        path = self.path(oid)
        try:
            os.chmod(path, 0o644)
            path.unlink()
        except FileNotFoundError:
            pass

    def clean_tmp(self) -> int:
        """Remove what killed processes left: temp files, and packs never indexed."""
        n = 0
        for folder, only_hidden in ((self.tmp, False), (self.packs.folder, True)):
            if folder.is_dir():
                for entry in os.scandir(folder):
                    if not only_hidden or entry.name.startswith("."):
                        os.unlink(entry.path)
                        n += 1
        for name in self.packs.unindexed():
            self.packs.remove(name)
            n += 1
        return n

    def drop(self, ids: set[str]) -> int:
        """Remove objects: loose ones directly, packed ones by rewriting their packs without them.

        The rewritten pack is durable and indexed before the old one goes. Callers hold the
        store lock exclusively. Returns how many objects went.
        """
        removed = 0
        for oid in ids:
            if self.loose_path(oid) is not None:
                self.delete(oid)
                removed += 1
        for pack in self.packs.indexes():
            gone = ids & pack.entries.keys()
            if not gone:
                continue
            keep = [oid for oid in pack.entries if oid not in ids]
            if keep:
                data = self.packs.read_pack(pack.name)
                spans = [pack.entries[oid] for oid in keep]
                new, index = make_pack(
                    [(o, data[a : a + n]) for o, (a, n) in zip(keep, spans, strict=True)]
                )
                self.packs.add(new, index, self._pack_barrier)
            self.packs.remove(pack.name)
            removed += len(gone)
        return removed


# Set once a reflink fails because the filesystem cannot do it: later files skip the attempt.
_reflink_unsupported = False
_NO_REFLINK = (errno.EOPNOTSUPP, errno.EINVAL, errno.EXDEV, errno.ENOTTY, errno.EBADF)
SMALL = 1 << 20  # objects below this are copied with one read and one write


def _place(
    src: Path, dest: Path, modes: tuple[str, ...], *, for_cache: bool, mode: int = 0o644
) -> str:
    """Create ``dest`` from ``src`` by the first link mode that works; copies get ``mode``."""
    global _reflink_unsupported
    last: OSError | None = None
    for how in modes:
        if how == "reflink" and _reflink_unsupported:
            continue
        try:
            if how == "reflink":
                _reflink(src, dest, mode)
            elif how == "hardlink":
                os.link(src, dest)
            elif how == "symlink" and not for_cache:
                os.symlink(src, dest)
            else:  # copy (and symlink mode's copy into the cache: the cache holds real bytes)
                _copy(src, dest, mode)
                how = "copy"
            return how
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENOENT):
                raise
            if how == "reflink" and exc.errno in _NO_REFLINK:
                _reflink_unsupported = True
            last = exc
            dest.unlink(missing_ok=True)
    raise last or OSError("no link mode worked")


def _write_new(path: str, data: bytes, mode: int) -> os.stat_result:
    fd = _create(path, mode)
    try:
        _write_all(fd, data)
        return os.fstat(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _create(dest: str | Path, mode: int) -> int:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    if mode & ~_UMASK != mode:
        os.fchmod(fd, mode)  # the umask must not change a restored file's mode
    return fd


def _copy(src: Path, dest: Path, mode: int) -> None:
    with open(src, "rb") as s:
        size = os.fstat(s.fileno()).st_size
        fd = _create(dest, mode)
        try:
            if size < SMALL:
                _write_all(fd, s.read())
            else:  # in the kernel, without passing through Python
                offset = 0
                while offset < size:
                    sent = os.sendfile(fd, s.fileno(), offset, min(size - offset, 1 << 30))
                    if sent == 0:
                        raise OSError(errno.EIO, f"{src} shrank while it was copied")
                    offset += sent
        finally:
            os.close(fd)


def _reflink(src: Path, dest: Path, mode: int) -> None:
    with open(src, "rb") as s:
        fd = _create(dest, mode)
        try:
            fcntl.ioctl(fd, FICLONE, s.fileno())
        except OSError:
            os.close(fd)
            dest.unlink(missing_ok=True)
            raise
        os.close(fd)


def _read_umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()
