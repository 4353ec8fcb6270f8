"""Quarantine: what a remote gc takes out of use waits on the remote for a grace period.

A gc never deletes an object it finds unreferenced: it moves it (a loose object, or a pack and
its index whole) into a batch of its own::

    quarantine/<batch>/STAMP               written first: its time on the store is the batch's
    quarantine/<batch>/objects/ab/cdef…    loose objects, as under objects/
    quarantine/<batch>/packs/<name>.idx    packs, as under packs/ (index first, as ever)

The batch's time is the STAMP's time *on the store* (S3 LastModified, the folder's mtime), as
git dates cruft packs by their mtime: no client's clock is trusted. A later gc deletes a batch
once that time is ``gc.grace`` old, after bringing back anything in it that something
references again. A push or fetch that needs an object from quarantine brings it back into use
(a folder renames it; S3 copies it server-side, or a packed object is re-packed) instead of
failing.

Only a holder of a remote lock calls what changes the remote here: a push (or fetch) holds its
own lock while it brings objects back, a gc the exclusive one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from tether.errors import CorruptObjectError
from tether.hashing import hash_bytes
from tether.objects.packs import PackIndex, make_pack
from tether.objects.remote import Batch, Inventory, Remote
from tether.objects.retention import Retention

STAMP = "STAMP"
WHOLE_PACK_SHARE = 0.3  # read a whole pack when at least this share of it is wanted
PACK_SIZE = 8 << 20  # objects brought back travel in packs of about this size


@dataclass(frozen=True)
class Place:
    """Where a quarantined object is: a batch, and a pack in it (None: loose)."""

    batch: Batch
    pack: str | None


def load_indexes(remote: Remote, inv: Inventory) -> None:
    """Read the index of every complete pack in quarantine (once per inventory)."""
    todo: dict[str, tuple[Batch, str]] = {}
    for batch in inv.quarantine.values():
        if batch.indexes is None:
            batch.indexes = {}
            for name, kinds in batch.packs.items():
                if kinds == {"pack", "idx"}:
                    todo[batch.rel("packs", f"{name}.idx")] = (batch, name)
    try:
        got = remote.read_many(sorted(todo))
    except FileNotFoundError:  # a gc deleted a batch since the listing: read what is left
        got = {}
        for rel in sorted(todo):
            try:
                got[rel] = remote.read_bytes(rel)
            except FileNotFoundError:
                batch, name = todo[rel]
                batch.packs.pop(name, None)  # gone with its batch: nothing to bring back
    for rel, data in got.items():
        batch, name = todo[rel]
        index = PackIndex.from_bytes(data, f"{rel} on remote {remote.name}")
        assert batch.indexes is not None
        batch.indexes[name] = index


def locate(remote: Remote, inv: Inventory) -> dict[str, Place]:
    """Every object in quarantine and where it is (the oldest batch first)."""
    if not inv.quarantine:
        return {}
    load_indexes(remote, inv)
    out: dict[str, Place] = {}
    for batch in sorted(inv.quarantine.values(), key=lambda b: (b.stamp or 0.0, b.name)):
        for oid in sorted(batch.loose):
            out.setdefault(oid, Place(batch, None))
        for name, index in sorted((batch.indexes or {}).items()):
            for oid in index.entries:
                out.setdefault(oid, Place(batch, name))
    return out


def pack_objects(
    remote: Remote, rel: str, index: PackIndex, ids: Iterable[str]
) -> dict[str, bytes]:
    """The bytes of ``ids`` from the pack at ``rel``, each checked against its id: the whole
    pack in one read when much of it is wanted, else ranged reads."""
    oids = sorted(set(ids))
    spans = [index.entries[oid] for oid in oids]
    if sum(n for _, n in spans) >= WHOLE_PACK_SHARE * index.size:
        pack = remote.read_bytes(rel)
        blobs = [pack[off : off + n] for off, n in spans]
    else:
        blobs = remote.read_ranges(rel, spans)
    for oid, data in zip(oids, blobs, strict=True):
        if hash_bytes(data) != oid:
            raise CorruptObjectError(
                f"{rel} on remote {remote.name} holds bytes for {oid} that do not match it: "
                "push it again from a clone whose `tether fsck` is clean"
            )
    return dict(zip(oids, blobs, strict=True))


def read_objects(remote: Remote, inv: Inventory, ids: Iterable[str]) -> dict[str, bytes]:
    """Quarantined objects' bytes, checked, without bringing them back (a gc reading the
    folders and records among them)."""
    where = locate(remote, inv)
    out: dict[str, bytes] = {}
    by_pack: dict[tuple[str, str], list[str]] = {}
    for oid in sorted(set(ids) & where.keys()):
        place = where[oid]
        if place.pack is None:
            data = remote.read_bytes(place.batch.rel(Remote.object_path(oid)))
            if hash_bytes(data) != oid:
                raise CorruptObjectError(
                    f"quarantined {oid} on remote {remote.name} does not match its id: push it "
                    "again from a clone whose `tether fsck` is clean"
                )
            out[oid] = data
        else:
            by_pack.setdefault((place.batch.name, place.pack), []).append(oid)
    for (batch_name, name), oids in by_pack.items():
        batch = inv.quarantine[batch_name]
        assert batch.indexes is not None
        rel = batch.rel("packs", f"{name}.pack")
        out.update(pack_objects(remote, rel, batch.indexes[name], oids))
    return out


def heads(remote: Remote, inv: Inventory, ids: Iterable[str], n: int = 32) -> dict[str, bytes]:
    """The first ``n`` bytes of each quarantined object among ``ids``."""
    where = locate(remote, inv)
    out: dict[str, bytes] = {}
    for oid in sorted(set(ids) & where.keys()):
        place = where[oid]
        if place.pack is None:
            rel, span = place.batch.rel(Remote.object_path(oid)), (0, n)
        else:
            assert place.batch.indexes is not None
            off, size = place.batch.indexes[place.pack].entries[oid]
            rel, span = place.batch.rel("packs", f"{place.pack}.pack"), (off, min(n, size))
        (out[oid],) = remote.read_ranges(rel, [span])
    return out


def restore(remote: Remote, inv: Inventory, ids: Iterable[str]) -> int:
    """Bring back into use every object among ``ids`` that is only in quarantine: a loose one
    as a file (renamed on a folder, copied server-side on S3), packed ones in a new pack. The
    quarantined copies stay until their batch's grace ends. How many came back."""
    need = set(ids) - inv.ids()
    if not need or not inv.quarantine:
        return 0
    where = locate(remote, inv)
    need &= where.keys()
    if not need:
        return 0
    loose = sorted(oid for oid in need if where[oid].pack is None)
    pairs = [(where[o].batch.rel(Remote.object_path(o)), Remote.object_path(o)) for o in loose]
    if remote.is_local:
        remote.move_files(pairs)
        for oid in loose:
            where[oid].batch.loose.discard(oid)
    else:
        remote.copy_files(pairs)
    for oid in loose:
        inv.loose.add(oid)
        inv.sizes[oid] = where[oid].batch.sizes.get(oid, 0)
    packed = sorted(read_objects(remote, inv, need - set(loose)).items())
    while packed:
        size, n = 0, 0
        while n < len(packed) and (n == 0 or size + len(packed[n][1]) <= PACK_SIZE):
            size += len(packed[n][1])
            n += 1
        data, index = make_pack(packed[:n])
        packed = packed[n:]
        remote.write_bytes(f"packs/{index.name}.pack", data)
        remote.barrier()
        remote.write_bytes(f"packs/{index.name}.idx", index.to_bytes())
        inv.packs[index.name] = index
    return len(need)


def open_batch(remote: Remote, name: str) -> Batch:
    """A new batch, its STAMP written first (so its objects are never without a date)."""
    batch = Batch(name, indexes={})
    remote.write_bytes(batch.rel(STAMP), json.dumps({"tether": "quarantine", "format": 1}).encode())
    remote.barrier()
    return batch


def put_aside(
    remote: Remote, batch: Batch, loose: list[str], packs: list[str]
) -> dict[str, Retention]:
    """Move loose objects and whole packs (index first) into ``batch``; what S3 Object Lock
    kept where it was, by path."""
    held = remote.move_files(
        [(Remote.object_path(o), batch.rel(Remote.object_path(o))) for o in loose]
    )
    idx = [(f"packs/{n}.idx", batch.rel("packs", f"{n}.idx")) for n in packs]
    held |= remote.move_files(idx)
    moved = [n for n in packs if f"packs/{n}.idx" not in held]
    kept = remote.move_files([(f"packs/{n}.pack", batch.rel("packs", f"{n}.pack")) for n in moved])
    if kept:  # a pack stays in use: so does its index
        back = [n for n in moved if f"packs/{n}.pack" in kept]
        remote.move_files([(batch.rel("packs", f"{n}.idx"), f"packs/{n}.idx") for n in back])
        held |= kept
    return held


def batch_files(batch: Batch) -> list[str]:
    """A batch's files, in the order they are deleted: objects, indexes, packs, STAMP last."""
    out = [batch.rel(Remote.object_path(o)) for o in sorted(batch.loose)]
    out += [
        batch.rel("packs", f"{n}.idx") for n, kinds in sorted(batch.packs.items()) if "idx" in kinds
    ]
    out += [
        batch.rel("packs", f"{n}.pack")
        for n, kinds in sorted(batch.packs.items())
        if "pack" in kinds
    ]
    return out


def batch_ids(batch: Batch) -> set[str]:
    out = set(batch.loose)
    for index in (batch.indexes or {}).values():
        out.update(index.entries)
    return out
