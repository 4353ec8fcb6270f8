"""Moving objects and refs between the local cache and a remote.

Push: one inventory of the remote, then only what it lacks: large objects loose, in parallel;
small ones in packs, each pack followed (after a barrier) by its index; then refs. Fetch: the
same in reverse, each object verified against its id before it enters the cache. A transfer
that dies half-way leaves nothing the next run misreads: loose objects appear by rename, packs
only count once indexed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tether._fs import unique_suffix
from tether._types import NO_PROGRESS, Callback
from tether.errors import CorruptObjectError, MissingObjectError
from tether.hashing import hash_bytes, hash_file
from tether.objects.packs import PackIndex, PackWriter, build_packs
from tether.objects.refs import parse_ref
from tether.objects.remote import Inventory, Remote
from tether.objects.store import ObjectStore

# fetch a whole pack when at least this share of its bytes is wanted, else ranged reads
WHOLE_PACK_SHARE = 0.3
# packs are built in memory: at most this many are sent at once (and as many wait)
PACKS_IN_FLIGHT = 2


@dataclass
class TransferResult:
    objects: int = 0
    bytes: int = 0
    packs: int = 0
    already: int = 0  # objects the other side had
    refs: int = 0
    ref_conflicts: list[str] = field(default_factory=list)
    requests: int = 0  # calls made to the remote (each listing page, read or write is one)
    restored: int = 0  # objects brought back from the remote's quarantine into use


def _run(jobs: int, tasks: Iterable[Callable[[], None]]) -> None:
    """Run tasks on ``jobs`` threads, taking them from the iterable only as threads free up (so a
    generator of packs never has more than ``2 * jobs`` of them in memory)."""
    jobs = max(1, jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: set[Future[None]] = set()
        for task in tasks:
            if len(pending) >= 2 * jobs:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            pending.add(pool.submit(task))
        for future in pending:
            future.result()


def push_objects(
    store: ObjectStore,
    remote: Remote,
    ids: Iterable[str],
    *,
    jobs: int,
    pack_threshold: int,
    pack_size: int,
    callback: Callback = NO_PROGRESS,
    inventory: Inventory | None = None,
) -> TransferResult:
    wanted = set(ids)
    absent = store.missing(wanted)
    if absent:
        raise MissingObjectError(
            absent, hint="they cannot be pushed; run `tether fsck` to see what needs them"
        )
    inv = inventory or remote.inventory()
    todo = sorted(wanted - inv.ids())
    result = TransferResult(already=len(wanted) - len(todo))
    callback.set_size(len(todo))
    sized = [(oid, store.size(oid)) for oid in todo]
    small = [(oid, n) for oid, n in sized if n < pack_threshold]
    large = [(oid, n) for oid, n in sized if n >= pack_threshold]
    # local packs the remote needs every object of travel as they are, with no re-packing
    whole = _whole_local_packs(store, {oid for oid, _ in small}, pack_size)
    sent_whole = {oid for index in whole for oid in index.entries}
    small = [(oid, n) for oid, n in small if oid not in sent_whole]
    indexes = list(whole)

    def send_loose(oid: str) -> None:
        path = store.loose_path(oid)
        if path is not None:
            remote.upload(path, Remote.object_path(oid))
        else:
            remote.write_bytes(Remote.object_path(oid), store.read_bytes(oid))
        callback.relative_update(1)

    _run(jobs, [partial(send_loose, oid) for oid, _ in large])

    def pack_tasks() -> Iterator[Callable[[], None]]:
        for index in whole:
            path = store.packs.folder / f"{index.name}.pack"
            yield partial(_send_pack, remote, path, index, callback)
        for data, index in build_packs(store, small, pack_size):
            indexes.append(index)
            yield partial(_send_pack, remote, data, index, callback)

    _run(PACKS_IN_FLIGHT, pack_tasks())
    remote.barrier()
    result.objects = len(todo)
    result.bytes = sum(n for _, n in sized)
    result.packs = len(indexes)
    return result


def _whole_local_packs(store: ObjectStore, small: set[str], pack_size: int) -> list[PackIndex]:
    if not small:
        return []
    return [
        index
        for index in store.packs.indexes()
        if index.entries.keys() <= small and index.size <= 2 * pack_size
    ]


def _send_pack(remote: Remote, data: bytes | Path, index: PackIndex, callback: Callback) -> None:
    """A pack, then (once it is durable) its index: an interrupted push keeps finished packs."""
    if isinstance(data, Path):
        remote.upload(data, f"packs/{index.name}.pack")
    else:
        remote.write_bytes(f"packs/{index.name}.pack", data)
    remote.barrier()
    remote.write_bytes(f"packs/{index.name}.idx", index.to_bytes())
    callback.relative_update(len(index.entries))


def fetch_objects(
    store: ObjectStore,
    remote: Remote,
    ids: Iterable[str],
    *,
    jobs: int,
    pack_threshold: int,
    callback: Callback = NO_PROGRESS,
    inventory: Inventory | None = None,
) -> TransferResult:
    """Objects come in verified; small ones are packed locally, ``pack_threshold`` permitting."""
    wanted = store.missing(set(ids))
    result = TransferResult()
    if not wanted:
        return result
    inv = inventory or remote.inventory()
    unknown = wanted - inv.ids()
    if unknown:
        raise MissingObjectError(
            unknown,
            hint=f"remote {remote.name} lacks them too; push them from a clone that has them",
        )
    callback.set_size(len(wanted))
    pack_of = inv.pack_of()
    by_pack: dict[str, list[str]] = {}
    for oid in sorted(wanted - inv.loose):
        by_pack.setdefault(pack_of[oid], []).append(oid)
    _run(
        jobs,
        [partial(_fetch_loose, store, remote, o, callback, result) for o in wanted & inv.loose],
    )
    with store.pack_writer(pack_threshold) as writer:
        _run(
            PACKS_IN_FLIGHT,
            (
                partial(_fetch_from_pack, writer, remote, inv, name, oids, callback, result)
                for name, oids in by_pack.items()
            ),
        )
    store.barrier()
    result.objects = len(wanted)
    return result


def _fetch_loose(
    store: ObjectStore, remote: Remote, oid: str, callback: Callback, result: TransferResult
) -> None:
    tmp = store.tmp / f"fetch.{unique_suffix(16)}"
    try:
        remote.download(Remote.object_path(oid), tmp)
        if hash_file(tmp) != oid:
            raise CorruptObjectError(
                f"remote {remote.name} sent bytes for {oid} that do not match it: the remote copy "
                "is corrupt; push it again from a clone whose `tether fsck` is clean"
            )
        result.bytes += os.stat(tmp).st_size
        store.adopt(tmp, oid)
    finally:
        tmp.unlink(missing_ok=True)
    callback.relative_update(1)


def _fetch_from_pack(
    writer: PackWriter,
    remote: Remote,
    inv: Inventory,
    name: str,
    oids: list[str],
    callback: Callback,
    result: TransferResult,
) -> None:
    index = inv.packs[name]
    spans = [index.entries[oid] for oid in oids]
    wanted_bytes = sum(n for _, n in spans)
    rel = f"packs/{name}.pack"
    if wanted_bytes >= WHOLE_PACK_SHARE * index.size:
        pack = remote.read_bytes(rel)
        if writer.threshold and _verified(pack, index):  # keep the pack as it is
            writer.add_pack(pack, index)
            result.bytes += wanted_bytes
            result.packs += 1
            callback.relative_update(len(oids))
            return
        blobs = [pack[off : off + n] for off, n in spans]
    else:
        blobs = remote.read_ranges(rel, spans)
    for oid, data in zip(oids, blobs, strict=True):
        if hash_bytes(data) != oid:
            raise CorruptObjectError(
                f"pack {name} on remote {remote.name} holds bytes for {oid} that do not match it: "
                "push it again from a clone whose `tether fsck` is clean"
            )
        writer.add(oid, data)
    result.bytes += wanted_bytes
    result.packs += 1
    callback.relative_update(len(oids))


def _verified(pack: bytes, index: PackIndex) -> bool:
    view = memoryview(pack)
    return len(pack) == index.size and all(
        hash_bytes(view[off : off + n]) == oid for oid, (off, n) in index.entries.items()
    )


def push_refs(
    refs: dict[str, tuple[str, ...]], remote: Remote, inv: Inventory | None = None
) -> TransferResult:
    """Union: send refs the remote lacks; one that differs there is a conflict, not overwritten."""
    theirs = remote.list_refs(inv)
    result = TransferResult()
    for name, ids in sorted(refs.items()):
        text = "\n".join(ids) + "\n"
        if name not in theirs:
            remote.write_bytes(f"refs/{name}", text.encode())
            result.refs += 1
        elif parse_ref(theirs[name], name) != ids:
            result.ref_conflicts.append(name)
    return result


def fetch_refs(
    mine: dict[str, tuple[str, ...]], remote: Remote, inv: Inventory | None = None
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Refs the remote has and we lack, and the names that differ on both sides."""
    new: dict[str, tuple[str, ...]] = {}
    conflicts = []
    for name, text in remote.list_refs(inv).items():
        ids = parse_ref(text, name)
        if name not in mine:
            new[name] = ids
        elif mine[name] != ids:
            conflicts.append(name)
    return new, conflicts


def remote_heads(
    remote: Remote, inv: Inventory, ids: Iterable[str], n: int = 32
) -> dict[str, bytes]:
    """The first ``n`` bytes of each of ``ids`` on the remote (ranged reads, one request per
    loose object and one per pack): enough to tell a folder manifest or a record from data
    without downloading the data."""
    out: dict[str, bytes] = {}
    by_pack: dict[str, list[str]] = {}
    pack_of = inv.pack_of()
    for oid in sorted(ids):
        if oid in inv.loose:
            (out[oid],) = remote.read_ranges(Remote.object_path(oid), [(0, n)])
        elif oid in pack_of:
            by_pack.setdefault(pack_of[oid], []).append(oid)
    for name, oids in by_pack.items():
        entries = inv.packs[name].entries
        spans = [(entries[oid][0], min(n, entries[oid][1])) for oid in oids]
        out.update(zip(oids, remote.read_ranges(f"packs/{name}.pack", spans), strict=True))
    return out
