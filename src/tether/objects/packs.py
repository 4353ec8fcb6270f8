"""Packs: many small objects in one file, so a remote sees a handful of requests, not 100k.

A pack is ``MAGIC`` followed by the objects' bytes back to back; it is named by the BLAKE3 hex of
its bytes. Its index (``<name>.idx``) lists ``[id, offset, length]`` for every object inside and
is written *after* the pack is durable: a pack without an index is invisible garbage, never a
half-known pack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from blake3 import blake3

from tether.errors import FormatError
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
        try:
            doc = json.loads(data)
            if doc.get("tether") != "pack-index":
                raise ValueError("not a pack index")
        except (ValueError, AttributeError) as exc:
            raise FormatError(f"pack index {where} is corrupt ({exc})") from exc
        if doc.get("format") != FORMAT:
            raise FormatError(
                f"pack index {where} has format {doc.get('format')}; this Tether reads format "
                f"{FORMAT}: upgrade Tether"
            )
        entries = {oid: (off, n) for oid, off, n in doc["objects"]}
        return cls(doc["pack"], entries, doc["size"])


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


def _finish(parts: list[bytes], entries: dict[str, tuple[int, int]]) -> tuple[bytes, PackIndex]:
    data = b"".join(parts)
    return data, PackIndex(blake3(data).hexdigest(), entries, len(data))
