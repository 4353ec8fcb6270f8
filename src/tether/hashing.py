"""BLAKE3 content ids: ``blake3:`` followed by 64 hex digits."""

from __future__ import annotations

import os
import re

from blake3 import blake3

PREFIX = "blake3:"
_ID_RE = re.compile(r"blake3:[0-9a-f]{64}")
# Files above this size are hashed with every core (the Rust side splits each chunk's work), in
# chunks read into one reused buffer: memory stays flat however big the file (mmap would count
# the whole file in the process's resident memory).
BIG_FILE = 16 * 1024 * 1024
CHUNK = 8 * 1024 * 1024


def is_object_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))  # not match with $: that allows a trailing newline


def hash_bytes(data: bytes | memoryview) -> str:
    return PREFIX + blake3(data).hexdigest()


def hash_file(path: str | os.PathLike[str], size: int | None = None) -> str:
    """Hash a file in one streaming pass; big files use every core."""
    if size is None:
        size = os.stat(path).st_size
    if size >= BIG_FILE:
        hasher = blake3(max_threads=blake3.AUTO)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                hasher.update(view[:n])
        return PREFIX + hasher.hexdigest()
    with open(path, "rb") as f:
        return hash_bytes(f.read())
