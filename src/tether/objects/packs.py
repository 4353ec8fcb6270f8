"""Packs: many small objects in one file, so a remote sees a handful of requests, not 100k, and
a local ``add`` of 100k small files writes a few files, not 100k.

A pack is ``MAGIC`` followed by the objects' bytes back to back; it is named by the BLAKE3 hex of
its bytes. Its index (``<name>.idx``) lists ``[id, offset, length]`` for every object inside and
is written *after* the pack is durable: a pack without an index is invisible garbage, never a
half-known pack.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blake3 import blake3

from tether._documents import Fields, Leaf, brief, read_document
from tether._fs import atomic_write
from tether.errors import FormatError
from tether.hashing import PREFIX

if TYPE_CHECKING:
    from tether.objects.store import ObjectStore

MAGIC = b"TETHERPACK\x00\x01\n"
FORMAT = 1


@dataclass(frozen=True)
class PackIndex:
    name: str
    entries: dict[str, tuple[int, int]]  # id -> (offset, length)
    size: int

    def to_bytes(self) -> bytes:
        doc = {
            "tether": "pack-index",
            "format": FORMAT,
            "pack": self.name,
            "size": self.size,
            "objects": [[oid, off, n] for oid, (off, n) in sorted(self.entries.items())],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "?") -> PackIndex:
        """The index in ``data``, checked whole: a pack named by 64 hex digits (never a path),
        and every entry an object id with a span inside the pack's size."""
        what = f"pack index {where}"
        doc = read_document(data, "pack-index", FORMAT, what)
        if problem := _INDEX.problem(doc, ""):
            raise FormatError(f"{what} is corrupt ({problem}): {_AGAIN}")
        size, objects = doc["size"], doc["objects"]
        if not _valid_spans(objects, size):
            i, entry = next((i, e) for i, e in enumerate(objects) if not _valid_span(e, size))
            raise FormatError(
                f"{what} is corrupt (objects[{i}] must be [object id, offset, length] inside "
                f"the pack's {size} bytes, not {brief(entry)}): {_AGAIN}"
            )
        return cls(doc["pack"], {oid: (off, n) for oid, off, n in objects}, size)


_NAME = re.compile(r"[0-9a-f]{64}")
_INDEX = Fields(
    {
        "pack": Leaf(lambda v: type(v) is str and bool(_NAME.fullmatch(v)), "64 hex digits"),
        "size": Leaf(lambda v: type(v) is int and 0 <= v < 2**63, "a size in bytes"),
        "objects": Leaf(lambda v: type(v) is list, "a list"),
    },
    required=("pack", "size", "objects"),
)
_AGAIN = "delete it and its pack, then fetch or push them again"


def _valid_span(entry: object, size: int) -> bool:
    return type(entry) is list and len(entry) == 3 and _valid_spans([entry], size)


def _valid_spans(objects: list[Any], size: int) -> bool:
    """Every entry ``[object id, offset, length]`` with its span inside the pack: each check is
    one pass in C over all entries (a 100k-object index is read in a few milliseconds more)."""
    if not objects:
        return True
    if set(map(type, objects)) != {list} or set(map(len, objects)) != {3}:
        return False
    flat = list(itertools.chain.from_iterable(objects))
    oids, offs, lengths = flat[0::3], flat[1::3], flat[2::3]
    return (
        set(map(type, oids)) == {str}
        and _IDS.fullmatch("\n".join(oids) + "\n") is not None
        and set(map(type, offs)) == {int}
        and set(map(type, lengths)) == {int}
        and min(offs) >= 0
        and min(lengths) >= 0
        and max(map(operator.add, offs, lengths)) <= size
    )


_IDS = re.compile(f"(?:{PREFIX}[0-9a-f]{{64}}\n)*")


def build_packs(
    store: ObjectStore, ids_with_sizes: Iterable[tuple[str, int]], max_size: int
) -> Iterator[tuple[bytes, PackIndex]]:
    """Group objects into packs of at most ``max_size`` bytes (one object may exceed it)."""
    parts: list[bytes] = [MAGIC]
    entries: dict[str, tuple[int, int]] = {}
    offset = len(MAGIC)
    for oid, size in ids_with_sizes:
        if entries and offset + size > max_size:
            yield _finish(parts, entries)
            parts, entries, offset = [MAGIC], {}, len(MAGIC)
        data = store.read_bytes(oid)
        parts.append(data)
        entries[oid] = (offset, len(data))
        offset += len(data)
    if entries:
        yield _finish(parts, entries)


def make_pack(items: Iterable[tuple[str, bytes]]) -> tuple[bytes, PackIndex]:
    """One pack holding ``items`` (id, bytes) in the order given."""
    parts: list[bytes] = [MAGIC]
    entries: dict[str, tuple[int, int]] = {}
    offset = len(MAGIC)
    for oid, data in items:
        parts.append(data)
        entries[oid] = (offset, len(data))
        offset += len(data)
    return _finish(parts, entries)


def _finish(parts: list[bytes], entries: dict[str, tuple[int, int]]) -> tuple[bytes, PackIndex]:
    data = b"".join(parts)
    return data, PackIndex(blake3(data).hexdigest(), entries, len(data))


class PackSet:
    """The packs of a local cache: ``<name>.pack`` plus ``<name>.idx`` in one folder.

    A pack is written (temp file, rename), made durable by the caller's barrier, and only then
    published by writing its index; a pack without an index is a leftover of a killed process
    and is removed by gc. The indexes are read once, on the first lookup.
    """

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.folder = folder
        self.tmp = tmp
        self._index: dict[str, tuple[str, int, int]] | None = None
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def index(self) -> dict[str, tuple[str, int, int]]:
        """id -> (pack name, offset, length) for every published pack."""
        if self._index is None:
            index: dict[str, tuple[str, int, int]] = {}
            for name, pack in self._read_indexes():
                for oid, (off, n) in pack.entries.items():
                    index.setdefault(oid, (name, off, n))
            self._index = index
        return self._index

    def refresh(self) -> None:
        """Read the indexes again on the next lookup (another process may have published)."""
        self._index = None

    def _read_indexes(self) -> Iterator[tuple[str, PackIndex]]:
        if not self.folder.is_dir():
            return
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if entry.name.endswith(".idx"):
                with open(entry.path, "rb") as f:
                    yield entry.name[:-4], PackIndex.from_bytes(f.read(), entry.path)

    def indexes(self) -> list[PackIndex]:
        return [pack for _, pack in self._read_indexes()]

    def read(self, oid: str) -> bytes | None:
        where = self.index().get(oid)
        if where is None:
            return None
        name, off, n = where
        with self._lock:
            fd = self._fds.get(name)
            if fd is None:
                fd = self._fds[name] = os.open(self.folder / f"{name}.pack", os.O_RDONLY)
        return os.pread(fd, n, off)

    def read_pack(self, name: str) -> bytes:
        return (self.folder / f"{name}.pack").read_bytes()

    def write_pack(self, data: bytes, index: PackIndex) -> None:
        """Step 1: the pack's bytes. Invisible until :meth:`publish`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / f"{index.name}.pack", data, mode=0o444, durable=False)

    def publish(self, index: PackIndex) -> None:
        """Step 2, after a barrier: the index that makes the pack's objects visible."""
        atomic_write(self.folder / f"{index.name}.idx", index.to_bytes(), mode=0o444, durable=False)
        current = self.index()
        for oid, (off, n) in index.entries.items():
            current.setdefault(oid, (index.name, off, n))

    def add(self, data: bytes, index: PackIndex, barrier: Callable[[], None]) -> None:
        """Write a pack, make it durable, then publish its index: the one way packs appear."""
        self.write_pack(data, index)
        barrier()
        self.publish(index)

    def remove(self, name: str) -> None:
        """Index first, then the pack (callers hold the store lock exclusively)."""
        with self._lock:
            fd = self._fds.pop(name, None)
            if fd is not None:
                os.close(fd)
        (self.folder / f"{name}.idx").unlink(missing_ok=True)
        (self.folder / f"{name}.pack").unlink(missing_ok=True)
        self._index = None

    def unindexed(self) -> list[str]:
        """Packs a killed process wrote but never published."""
        if not self.folder.is_dir():
            return []
        names = {p.name for p in self.folder.iterdir()}
        return sorted(n[:-5] for n in names if n.endswith(".pack") and f"{n[:-5]}.idx" not in names)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


class PackWriter:
    """Collects small objects and writes them as local packs (thread-safe).

    Objects of ``threshold`` bytes or more go loose through ``put_loose``; so does everything
    when ``threshold`` is 0 (link modes that need one file per object).
    """

    def __init__(
        self,
        packs: PackSet,
        has: Callable[[str], bool],
        put_loose: Callable[[bytes, str], object],
        barrier: Callable[[], None],
        *,
        threshold: int,
        max_size: int,
    ) -> None:
        self.packs, self.has, self.put_loose, self.barrier = packs, has, put_loose, barrier
        self.threshold, self.max_size = threshold, max_size
        self._lock = threading.Lock()
        self._reset()
        self.written: list[PackIndex] = []

    def _reset(self) -> None:
        self._parts: list[bytes] = [MAGIC]
        self._entries: dict[str, tuple[int, int]] = {}
        self._offset = len(MAGIC)

    def add(self, oid: str, data: bytes) -> None:
        if len(data) >= self.threshold or not self.threshold:
            self.put_loose(data, oid)
            return
        with self._lock:
            if oid in self._entries or self.has(oid):
                return
            self._parts.append(data)
            self._entries[oid] = (self._offset, len(data))
            self._offset += len(data)
            if self._offset >= self.max_size:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def add_pack(self, data: bytes, index: PackIndex) -> None:
        """Keep a whole, already verified pack (from a remote) as one of ours."""
        self.packs.add(data, index, self.barrier)
        with self._lock:
            self.written.append(index)

    def _flush_locked(self) -> None:
        if not self._entries:
            return
        data, index = _finish(self._parts, self._entries)
        self._reset()
        self.packs.add(data, index, self.barrier)
        self.written.append(index)

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.flush()
