"""``tether gc``: delete what no root reaches, locally (under the exclusive store lock); on a
remote, take it out of use into a quarantine under the remote's exclusive gc lock, and delete it
only after a grace period (see :func:`gc_remote`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from tether.config import duration_seconds
from tether.errors import RetainedObjectsError, UsageError
from tether.objects import quarantine, remote_roots
from tether.objects.graph import CONTAINER_HEADERS, reachable
from tether.objects.packs import PackIndex, make_pack
from tether.objects.remote import Batch, Inventory, Remote
from tether.objects.remote_locks import HeldLock, hold_gc
from tether.objects.retention import Retention
from tether.objects.transfer import fetch_objects, remote_heads
from tether.workspace.repo import Workspace
from tether.workspace.roots import Root, pairs, roots
from tether.workspace.sync import lock_times, open_remote


@dataclass(frozen=True)
class GcResult:
    removed: int  # deleted for good: here at once; on a remote once their grace period ended
    bytes: int
    kept: int
    dry_run: bool
    repacked: int = 0
    temp_files: int = 0
    # on a remote with S3 Object Lock: dead objects it keeps (they stay readable), not in removed
    retained: int = 0
    retained_bytes: int = 0
    retention_ends: tuple[datetime, datetime] | None = None  # first and last, UTC
    legal_holds: int = 0  # files kept by a legal hold rather than a date
    # on a remote: taken out of use into quarantine now, brought back from it, still waiting
    quarantined: int = 0
    quarantined_bytes: int = 0
    restored: int = 0
    waiting: int = 0
    grace: float = 0.0  # seconds


def gc(ws: Workspace, *, dry_run: bool = False, all_commits: bool = False) -> GcResult:
    if ws.dot.is_symlink():
        raise UsageError(
            f"{ws.dot} is shared with another work tree (a `tether reproduce --keep` worktree): "
            "run gc in the repository that owns the cache, where every pointer is seen"
        )
    with ws.deleting():
        live = reachable(ws.store, pairs(roots(ws, all_commits=all_commits)))
        dead = {oid for oid in ws.store.iter_ids() if oid not in live.ids}
        size = sum(ws.store.size(oid) for oid in dead)
        temp = 0
        if not dry_run:
            ws.statcache.forget_complete()
            ws.store.drop(dead)
            temp = ws.store.clean_tmp()
    return GcResult(len(dead), size, len(live.ids), dry_run, temp_files=temp)


def gc_remote(
    ws: Workspace,
    remote_name: str | None = None,
    *,
    dry_run: bool = False,
    all_commits: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> GcResult:
    """Take out of use on a remote what nothing needs, and delete what has waited long enough.

    Under the remote's exclusive gc lock (taken once every live push is done; see
    :mod:`tether.objects.remote_locks`), an object is needed when this clone's roots, a ref on
    the remote, or a push's published roots younger than ``gc.grace`` reach it. Objects nothing
    needs move to a quarantine batch dated by the store's clock; a batch whose grace period has
    ended is deleted, after anything in it that is needed again was brought back (see
    :mod:`tether.objects.quarantine`). What only a ref that a push published and the remote no
    longer has reached (``runs purge`` removed it) is deleted at once, not quarantined.

    On an S3 bucket with Object Lock, objects still under retention (or a legal hold) cannot be
    removed: they stay, whole and readable, and once everything else is collected
    :class:`RetainedObjectsError` says how many and until when (its ``result`` is the
    :class:`GcResult`; a dry run raises it too). On any versioned bucket, removed means every
    version deleted by id, not a delete marker."""
    remote = open_remote(ws, remote_name)
    grace = duration_seconds(ws.config.get("gc.grace"))
    with hold_gc(remote, lock_times(ws), sleep) as lock:
        job = _RemoteGc(ws, remote, lock, grace, dry_run)
        result = job.run(all_commits)
    if result.retained:
        raise RetainedObjectsError(_retained_message(remote.name, result), result)
    return result


def _pack_files(name: str, under: str = "packs") -> list[str]:
    return [f"{under}/{name}.idx", f"{under}/{name}.pack"]


def _holds(held: dict[str, Retention], pack: str) -> bool:
    return any(rel in held for rel in _pack_files(pack))


def _write_pack(remote: Remote, under: str, blobs: dict[str, bytes]) -> PackIndex:
    """A new pack of ``blobs`` under ``under``, then (once durable) its index."""
    data, index = make_pack(sorted(blobs.items()))
    remote.write_bytes(f"{under}/{index.name}.pack", data)
    remote.barrier()
    remote.write_bytes(f"{under}/{index.name}.idx", index.to_bytes())
    return index


@dataclass
class _Moved:
    repacked: int = 0
    taken: int = 0  # into quarantine
    taken_bytes: int = 0
    deleted: int = 0  # at once: what only a removed ref kept
    deleted_bytes: int = 0


class _RemoteGc:
    """One remote gc under its lock: what is needed, what goes into quarantine, what goes."""

    def __init__(
        self,
        ws: Workspace,
        remote: Remote,
        lock: HeldLock,
        grace: float,
        dry_run: bool,
    ) -> None:
        self.ws, self.remote, self.lock, self.grace = ws, remote, lock, grace
        self.dry_run = dry_run
        self.inv = remote.inventory()
        self.now = lock.taken_at
        self.held: dict[str, Retention] = {}
        self.keep: set[str] = set()
        self.doomed: set[str] = set()
        self.batch: Batch | None = None

    def run(self, all_commits: bool) -> GcResult:
        remote, inv = self.remote, self.inv
        fresh, old_roots = remote_roots.split_by_age(inv, self.now, self.grace)
        self._find_keep(all_commits, fresh)
        bring = (self.keep & quarantine.locate(remote, inv).keys()) - inv.ids()
        restored = len(bring)
        if not self.dry_run:
            self.lock.confirm()
            restored = quarantine.restore(remote, inv, bring)
        loose = sorted(inv.loose - self.keep)
        dead = {n: [o for o in idx.entries if o not in self.keep] for n, idx in inv.packs.items()}
        dead = {n: oids for n, oids in dead.items() if oids}
        # what S3 Object Lock holds stays as it is: not moved, and a pack not rewritten (which
        # would add a copy of its live objects at every gc)
        files = [rel for n in dead for rel in _pack_files(n)]
        self.held = remote.retained(files + [Remote.object_path(o) for o in loose])
        free = {n: oids for n, oids in dead.items() if not _holds(self.held, n)}
        out = [o for o in loose if Remote.object_path(o) not in self.held]
        batches = list(inv.quarantine.values())
        expired = [b for b in batches if b.stamp is not None and self.now - b.stamp >= self.grace]
        waiting = sum(len(quarantine.batch_ids(b) - self.keep) for b in batches if b not in expired)
        removed, removed_bytes = self._purge(expired)
        moved = self._take_out(free, out)
        if not self.dry_run:
            remote.delete(old_roots)
            remote.delete(remote.stale_tmp())
        return self._tally(
            dead,
            loose,
            restored=restored,
            repacked=moved.repacked,
            quarantined=(moved.taken, moved.taken_bytes),
            removed=(removed + moved.deleted, removed_bytes + moved.deleted_bytes),
            waiting=waiting + moved.taken,
        )

    def _find_keep(self, all_commits: bool, fresh_roots: list[str]) -> None:
        """What must stay: what this clone's roots, the remote's refs and the roots pushes
        published within the grace period reach. What only refs removed from the remote since
        reached (a purged run's data) is doomed: deleted at once."""
        published = remote_roots.read_roots(self.remote, fresh_roots)
        protect, removed_refs = published.split(self.remote.list_refs(self.inv))
        extra = [Root("roots a push published", oid, "ref") for oid in sorted(protect)]
        found = roots(self.ws, all_commits=all_commits) + extra
        self.keep = _reach(self.ws, self.remote, self.inv, found)
        if removed_refs:
            purged = [Root("a removed ref", oid, "ref") for oid in sorted(removed_refs)]
            self.doomed = _reach(self.ws, self.remote, self.inv, purged) - self.keep

    def _new_batch(self) -> Batch:
        if self.batch is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.now))
            self.batch = quarantine.open_batch(self.remote, f"{stamp}-{self.lock.token}")
        return self.batch

    def _take_out(self, free: dict[str, list[str]], loose: list[str]) -> _Moved:
        """Partly dead packs are rewritten with their live objects; dead packs and loose
        objects go into this run's batch, except what only a removed ref kept, which is
        deleted."""
        remote, inv = self.remote, self.inv
        out = _Moved()
        aside_packs: list[str] = []
        for name, oids in free.items():
            index = inv.packs[name]
            dropped = set(oids)
            rest = dropped - self.doomed
            out.taken += len(rest)
            out.taken_bytes += sum(index.entries[o][1] for o in rest)
            out.deleted += len(dropped & self.doomed)
            out.deleted_bytes += sum(index.entries[o][1] for o in dropped & self.doomed)
            live = [o for o in index.entries if o not in dropped]
            out.repacked += bool(live)
            if self.dry_run:
                continue
            self.lock.confirm()
            wanted = live + sorted(rest) if rest != dropped else live
            blobs = quarantine.pack_objects(remote, f"packs/{name}.pack", index, wanted)
            if live:
                new = _write_pack(remote, "packs", {o: blobs[o] for o in live})
                inv.packs[new.name] = new
            if rest == dropped:
                aside_packs.append(name)
                continue
            if rest:
                _write_pack(remote, self._new_batch().rel("packs"), {o: blobs[o] for o in rest})
            self.held |= remote.collect(_pack_files(name))
        doomed = [o for o in loose if o in self.doomed]
        aside = [o for o in loose if o not in self.doomed]
        if not self.dry_run:
            self.lock.confirm()
            self.held |= remote.collect([Remote.object_path(o) for o in doomed])
            if aside or aside_packs:
                self.held |= quarantine.put_aside(remote, self._new_batch(), aside, aside_packs)
            aside = [o for o in aside if Remote.object_path(o) not in self.held]
            doomed = [o for o in doomed if Remote.object_path(o) not in self.held]
        out.taken += len(aside)
        out.taken_bytes += self._loose_bytes(aside)
        out.deleted += len(doomed)
        out.deleted_bytes += self._loose_bytes(doomed)
        return out

    def _loose_bytes(self, oids: Collection[str]) -> int:
        return sum(self.inv.sizes.get(o, 0) for o in oids)

    def _purge(self, expired: list[Batch]) -> tuple[int, int]:
        """Delete the batches whose grace period ended (whatever in them is needed again was
        brought back first), and from the others what only a purged run kept. A batch without
        a STAMP gets one now: its grace starts today. (objects removed, their bytes)"""
        done = {b.name for b in expired}
        removed = nbytes = 0
        for batch in list(self.inv.quarantine.values()):
            ids = quarantine.batch_ids(batch)
            gone = ids - self.keep if batch.name in done else ids & self.doomed
            removed += len(gone)
            nbytes += self._batch_bytes(batch, gone)
            if self.dry_run or not (batch.name in done or gone or batch.stamp is None):
                continue
            self.lock.confirm()
            if batch.name in done:
                held = self.remote.collect(quarantine.batch_files(batch))
                if not held:
                    self.remote.collect([batch.rel(quarantine.STAMP)])
                    self.remote.drop_empty_folders(batch.rel())
                self.held |= held
            elif gone:
                self._drop_from_batch(batch, gone)
            if batch.stamp is None:
                quarantine.open_batch(self.remote, batch.name)
        return removed, nbytes

    def _batch_bytes(self, batch: Batch, ids: set[str]) -> int:
        out = sum(batch.sizes.get(o, 0) for o in ids & batch.loose)
        for index in (batch.indexes or {}).values():
            out += sum(n for oid, (_, n) in index.entries.items() if oid in ids)
        return out

    def _drop_from_batch(self, batch: Batch, gone: set[str]) -> None:
        """Delete ``gone`` from a batch that otherwise waits on: loose files, and packs
        rewritten without them."""
        rels = [batch.rel(Remote.object_path(o)) for o in sorted(gone & batch.loose)]
        for name, index in sorted((batch.indexes or {}).items()):
            if not gone & index.entries.keys():
                continue
            rest = [o for o in index.entries if o not in gone]
            old = batch.rel("packs", f"{name}.pack")
            if rest:
                _write_pack(
                    self.remote,
                    batch.rel("packs"),
                    quarantine.pack_objects(self.remote, old, index, rest),
                )
            rels += _pack_files(name, batch.rel("packs"))
        self.held |= self.remote.collect(rels)

    def _tally(
        self,
        dead: dict[str, list[str]],
        loose: list[str],
        *,
        restored: int,
        repacked: int,
        quarantined: tuple[int, int],
        removed: tuple[int, int],
        waiting: int,
    ) -> GcResult:
        """Count what went (or would go) and what Object Lock keeps: a held loose object is
        one, a held pack is its dead objects."""
        inv, held = self.inv, self.held
        held_packs = [n for n in dead if _holds(held, n)]
        sizes = {n: sum(inv.packs[n].entries[oid][1] for oid in oids) for n, oids in dead.items()}
        retained = sum(Remote.object_path(o) in held for o in loose)
        retained += sum(len(dead[n]) for n in held_packs)
        retained_bytes = sum(sizes[n] for n in held_packs)
        retained_bytes += sum(inv.sizes.get(o, 0) for o in loose if Remote.object_path(o) in held)
        ends = sorted(r.until for r in held.values() if r.until is not None)
        return GcResult(
            removed=removed[0],
            bytes=removed[1],
            kept=len(self.keep),
            dry_run=self.dry_run,
            repacked=repacked,
            retained=retained,
            retained_bytes=retained_bytes,
            retention_ends=(ends[0], ends[-1]) if ends else None,
            legal_holds=sum(r.legal_hold for r in held.values()),
            quarantined=quarantined[0],
            quarantined_bytes=quarantined[1],
            restored=restored,
            waiting=waiting,
            grace=self.grace,
        )


def _reach(ws: Workspace, remote: Remote, inv: Inventory, found: list[Root]) -> set[str]:
    """What ``found`` reaches, walking folders and records on the remote (in use or in
    quarantine: read there, not brought back) that this clone lacks; ids named but stored
    nowhere count too. Everything gc must keep."""
    threshold = ws.config.local_pack_threshold()
    for name, text in remote.list_refs(inv).items():
        found = found + [Root(f"remote ref {name}", oid, "ref") for oid in text.split()]
    aside = quarantine.locate(remote, inv)
    on_remote = inv.ids() | aside.keys()
    with ws.writing():  # manifests and records this clone lacks are fetched to read their links
        wanted = {r.id for r in found if r.may_contain} & on_remote
        looked: set[str] = set()
        while True:
            in_use = wanted & inv.ids()
            fetch_objects(ws.store, remote, in_use, jobs=8, pack_threshold=threshold, inventory=inv)
            for oid, data in quarantine.read_objects(
                remote, inv, ws.store.missing(wanted - in_use)
            ).items():
                ws.store.put_bytes(data, oid)
            live = reachable(ws.store, pairs(found))
            # what a record links and this clone lacks may be a manifest (whose files must stay)
            # or a record: its first bytes say which, without downloading the data
            unknown = (live.missing & on_remote) - live.missing_files - looked
            looked |= unknown
            heads = remote_heads(remote, inv, unknown & inv.ids())
            heads |= quarantine.heads(remote, inv, unknown - inv.ids())
            wanted = {oid for oid, head in heads.items() if head.startswith(CONTAINER_HEADERS)}
            if not wanted:
                return live.ids | live.missing


def _retained_message(remote: str, r: GcResult) -> str:
    did, stay = ("would quarantine", "would stay") if r.dry_run else ("quarantined", "stay")
    out = (
        f"remote {remote}: {did} {r.quarantined} object(s); {r.retained} more are under S3 "
        f"Object Lock and {stay} on the remote, readable"
    )
    if r.retention_ends:
        first, last = (f"{d:%Y-%m-%d %H:%M} UTC" for d in r.retention_ends)
        out += f": retained until {last}" if first == last else f": retained until {first} … {last}"
    if r.legal_holds:
        out += f"; {r.legal_holds} file(s) are under a legal hold, kept until it is lifted"
    return out + f". Run `tether gc --remote {remote}` again after that to collect them"
