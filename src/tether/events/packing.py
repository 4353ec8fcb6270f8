"""Event logs in packs, and what an audit of them remembers.

An audit that walked a chain and found it whole packs its loose events (one file per event is
100,000 files to open for a long log) into packs, deletes the loose copies, and remembers in
``.tether/cache`` the head it verified and, for each pack, the digest of its index. A pack is
named by the BLAKE3 of its bytes, so the next audit proves every packed event unchanged by
hashing each pack whole and comparing each index with its digest, then walks only the events
after the head it verified, in the order a whole walk takes them; when that head is not on the
new head's first-parent line (another clone merged this one's history in), the audit walks
every event again. ``tether audit verify --full`` always does.
"""

from __future__ import annotations

import json
from pathlib import Path

from blake3 import blake3

from tether.errors import FormatError, MissingObjectError
from tether.events.chain import STORE_LOCK, EventLog
from tether.objects.lock import file_lock
from tether.objects.packs import make_pack

PACK_BYTES = 8 << 20
FORMAT = 1
_CHUNK = 1 << 20


def pack_loose(log: EventLog, ids: list[str]) -> bool:
    """Move the loose ones of ``ids`` (events of ``log``) into packs; whether every one of
    them is packed and no loose copy is left (the store lock is taken to delete them; when gc
    holds it, the copies stay and the next audit tries again)."""
    store = log.store
    loose = [oid for oid in ids if store.loose_path(oid) is not None]
    batch: list[tuple[str, bytes]] = []
    size = 0
    for oid in loose:
        data = store.read_bytes(oid)
        batch.append((oid, data))
        size += len(data)
        if size >= PACK_BYTES:
            _add(log, batch)
            batch, size = [], 0
    if batch:
        _add(log, batch)
    if not loose:
        return True
    try:
        with file_lock(log.lock_dir / STORE_LOCK, exclusive=True, timeout=5):
            for oid in loose:
                store.delete(oid)
    except TimeoutError:
        return False
    return True


def _add(log: EventLog, batch: list[tuple[str, bytes]]) -> None:
    data, index = make_pack(batch)
    log.store.packs.add(data, index, log.store._pack_barrier)


def remember(log: EventLog, cache: Path, head: str, count: int) -> None:
    """The chain up to ``head`` (``count`` events) was verified and every event is packed."""
    from tether._fs import write_cache

    packs = {}
    for idx in sorted(log.store.packs.folder.glob("*.idx")):
        packs[idx.name[:-4]] = blake3(idx.read_bytes()).hexdigest()
    doc = {"format": FORMAT, "log": log.name, "head": head, "count": count, "packs": packs}
    write_cache(cache, json.dumps(doc).encode())


def verified_before(log: EventLog, cache: Path) -> tuple[int, list[str]] | None:
    """How many events the chain holds and the ids of those after the verified head, when the
    packs still hold what was verified and the new events link to it; None when an audit must
    walk the whole chain (nothing remembered, a pack changed, the chain rewritten)."""
    try:
        doc = json.loads(cache.read_bytes())
        if doc.get("format") != FORMAT or doc.get("log") != log.name:
            return None
        head, count, packs = str(doc["head"]), int(doc["count"]), dict(doc["packs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = log.store.packs.folder
    for name, digest in packs.items():
        try:
            if blake3((folder / f"{name}.idx").read_bytes()).hexdigest() != digest:
                return None
            if _hash_file(folder / f"{name}.pack") != name:
                return None
        except OSError:
            return None
    if not _only_in(log, set(packs)):
        return None
    try:
        newer = log.events_after(head)
    except (FormatError, MissingObjectError):
        return None
    if newer is None:
        return None
    return count + len(newer), [e.id for e in newer]


def _only_in(log: EventLog, packs: set[str]) -> bool:
    """Whether every object of ``packs`` is read from them: no loose copy, and no other pack
    serves its id first (the store reads a loose file before any pack)."""
    store = log.store
    store.packs.refresh()
    served = store.packs.index()
    loose = set(store.loose_ids())  # one listing, not a stat per event
    if any(served[oid][0] in packs for oid in loose if oid in served):
        return False
    ids = (oid for idx in store.packs.indexes() if idx.name in packs for oid in idx.entries)
    return all(served[oid][0] in packs for oid in ids)


def _hash_file(path: Path) -> str:
    h = blake3()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
