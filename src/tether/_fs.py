"""Durable file writes and path safety, the primitives every layer writes through.

A durable write is: temp file in the same folder -> write -> rename -> sync barrier. For a single
file the barrier is fsync of the file and its folder; for a batch it is one ``syncfs`` of the
filesystem after the batch (see ARCHITECTURE.md, principle 5).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from tether.errors import CacheWriteError, PathError

_libc: Any = None


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """One barrier for a batch: ``syncfs`` of the filesystem holding ``path``."""
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    syncfs = getattr(_libc, "syncfs", None)
    if syncfs is None:  # not Linux: fall back to a whole-system sync
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def unique_suffix(nbytes: int = 4) -> str:
    """Random hex for temp-file names (cheaper to import than uuid)."""
    return os.urandom(nbytes).hex()


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{unique_suffix(6)}.tmp")


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old bytes or the new, never a mix:
    every byte is written (``os.write`` may write fewer than asked) before the rename, and a
    write that fails (a full disk) leaves the old file as it was and raises."""
    tmp = temp_path_for(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # the umask must not narrow it
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise translate_write_error(exc, path) from exc
    if durable:
        fsync_dir(path.parent)


def remove_path(path: Path) -> None:
    """Remove a file, a symlink (never what it points at) or a whole folder; nothing if absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_cache(path: Path, data: bytes) -> None:
    """Best effort, for a file that only saves time (.tether/cache): written atomically, not
    synced, and a failure is ignored (the next reader recomputes what it would have held)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, durable=False)
    except (OSError, CacheWriteError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``: ``os.write`` returns how much it wrote, which may be less."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # a regular file that takes nothing has no room left
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def translate_write_error(exc: OSError, path: Path) -> Exception:
    if exc.errno == errno.ENOSPC:
        return CacheWriteError(f"no space left to write {path}: free some space and run again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheWriteError(
            f"cannot write {path}: the folder is read-only; make it writable and run again"
        )
    return exc


def resolve_inside(root: Path, path: str | os.PathLike[str]) -> Path:
    """Resolve ``path`` (relative to the cwd) and refuse anything outside ``root``.

    Symlinks are followed, so a link that leaves the repository is refused too.
    """
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = Path.cwd() / candidate
    root = resolved_dir(root)
    quick = _inside_without_links(root, candidate)
    if quick is not None:
        return quick
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise PathError(
            f"{path} is outside the repository {root}"
            + (" (through a symlink)" if _lexically_inside(root, candidate) else "")
            + ": only paths inside the repository can be tracked"
        )
    return resolved


@functools.lru_cache(maxsize=16)
def resolved_dir(root: Path) -> Path:
    """``root.resolve()``, once per process (a repository root does not move while it runs)."""
    return root.resolve()


def _inside_without_links(root: Path, candidate: Path) -> Path | None:
    """``candidate`` itself when it is plainly under the resolved ``root`` with no ``..`` and no
    symlink below ``root`` (a few ``lstat`` calls instead of resolving every component); None
    when only a full resolve can tell."""
    parts = candidate.parts
    top = len(root.parts)
    if parts[:top] != root.parts or ".." in parts[top:] or "." in parts[top:]:
        return None
    here = root
    for part in parts[top:]:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return None
        except FileNotFoundError:
            break  # what does not exist yet cannot be a link
        except OSError:
            return None
    return candidate


def _lexically_inside(root: Path, candidate: Path) -> bool:
    norm = Path(os.path.normpath(candidate))
    return norm == root or root in norm.parents
