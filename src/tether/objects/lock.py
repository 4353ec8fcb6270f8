"""Advisory locks on lock files: shared for writers that only add, exclusive for deletes.

Adding objects never conflicts with adding objects (writes are atomic renames of identical
bytes), so ``add``, ``checkout``, ``push`` and ``pull`` take the store lock *shared*; ``gc`` and
repairs take it *exclusive* and so never delete an object a live writer is about to point at.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tether._fs import translate_write_error
from tether.errors import LockError


@contextmanager
def file_lock(path: Path, *, exclusive: bool, timeout: float = 30.0) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise translate_write_error(exc, path) from exc
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    kind = "gc or a repair" if not exclusive else "another Tether command"
                    raise LockError(
                        f"{path} is locked by {kind} in another process: "
                        "wait for it to finish and run again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock
