"""``tether gc``: delete what no root reaches, locally (under the exclusive store lock) or on a
remote (under the remote's ``locks/gc``)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime

from tether.errors import RemoteError, RetainedObjectsError, UsageError
from tether.objects.graph import CONTAINER_HEADERS, reachable
from tether.objects.packs import build_packs
from tether.objects.remote import Inventory, Remote
from tether.objects.retention import Retention
from tether.objects.transfer import fetch_objects, remote_heads
from tether.workspace.repo import Workspace
from tether.workspace.roots import Root, pairs, roots
from tether.workspace.sync import open_remote

STALE_LOCK_SECONDS = 3600


@dataclass(frozen=True)
class GcResult:
    removed: int
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
) -> GcResult:
    """Remove from a remote what no pointer of this clone and no ref on the remote needs.

    On an S3 bucket with Object Lock, objects still under retention (or a legal hold) cannot be
    removed: they stay, whole and readable, and once everything else is collected
    :class:`RetainedObjectsError` says how many and until when (its ``result`` is the
    :class:`GcResult`; a dry run raises it too). A later gc collects them once retention ends.
    On any versioned bucket, collected means every version deleted by id, not a delete marker."""
    remote = open_remote(ws, remote_name)
    _take_lock(remote)
    try:
        result = _collect(ws, remote, dry_run=dry_run, all_commits=all_commits)
    finally:
        remote.delete(["locks/gc"])
    if result.retained:
        raise RetainedObjectsError(_retained_message(remote.name, result), result)
    return result


def _take_lock(remote: Remote) -> None:
    try:
        held = json.loads(remote.read_bytes("locks/gc"))
        if time.time() - float(held.get("time", 0)) < STALE_LOCK_SECONDS:
            raise RemoteError(
                f"remote {remote.name} is already being collected by {held.get('host')} "
                f"(pid {held.get('pid')}): wait for it to finish"
            )
    except FileNotFoundError:
        pass
    me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    remote.write_bytes("locks/gc", json.dumps(me).encode())


def _live(ws: Workspace, remote: Remote, inv: Inventory, all_commits: bool) -> set[str]:
    """What this clone's roots and the remote's refs reach (or name without the remote having
    it): everything gc must keep."""
    threshold = ws.config.local_pack_threshold()
    root_ids = roots(ws, all_commits=all_commits)
    for name, text in remote.list_refs(inv).items():
        root_ids.extend(Root(f"remote ref {name}", oid, "ref") for oid in text.split())
    on_remote = inv.ids()
    with ws.writing():  # manifests and records this clone lacks are fetched to read their links
        wanted = {r.id for r in root_ids if r.may_contain} & on_remote
        looked: set[str] = set()
        while True:
            fetch_objects(ws.store, remote, wanted, jobs=8, pack_threshold=threshold, inventory=inv)
            live = reachable(ws.store, pairs(root_ids))
            # what a record links and this clone lacks may be a manifest (whose files must stay)
            # or a record: its first bytes say which, without downloading the data
            unknown = (live.missing & on_remote) - live.missing_files - looked
            looked |= unknown
            heads = remote_heads(remote, inv, unknown)
            wanted = {oid for oid, head in heads.items() if head.startswith(CONTAINER_HEADERS)}
            if not wanted:
                return live.ids | live.missing


def _pack_files(name: str) -> list[str]:
    return [f"packs/{name}.idx", f"packs/{name}.pack"]


def _collect(ws: Workspace, remote: Remote, *, dry_run: bool, all_commits: bool) -> GcResult:
    inv = remote.inventory()
    keep = _live(ws, remote, inv, all_commits)
    loose = [Remote.object_path(oid) for oid in sorted(inv.loose - keep)]
    dead = {name: [o for o in index.entries if o not in keep] for name, index in inv.packs.items()}
    dead = {name: oids for name, oids in dead.items() if oids}
    # a pack Object Lock holds stays whole: neither deleted nor rewritten (which would add a
    # copy of its live objects at every gc); loose objects are asked by deleting them, except
    # in a dry run
    held = remote.retained([rel for name in dead for rel in _pack_files(name)])
    repacked = 0
    if dry_run:
        held |= remote.retained(loose)
    else:
        free = {n: oids for n, oids in dead.items() if not _holds(held, n)}
        repacked = _repack(ws, remote, inv, free)
        # indexes first, so no index ever names a missing pack; a pack whose index stays, stays
        held |= remote.collect([f"packs/{n}.idx" for n in free])
        gone = [f"packs/{n}.pack" for n in free if not _holds(held, n)]
        held |= remote.collect(gone + loose)
        remote.delete(remote.stale_tmp())
    return _tally(inv, dead, loose, held, kept=len(keep), dry_run=dry_run, repacked=repacked)


def _holds(held: dict[str, Retention], pack: str) -> bool:
    return any(rel in held for rel in _pack_files(pack))


def _repack(ws: Workspace, remote: Remote, inv: Inventory, dead: dict[str, list[str]]) -> int:
    """Rewrite partly dead packs: the new pack and index land before the old ones go away."""
    threshold = ws.config.local_pack_threshold()
    repacked = 0
    for name, gone in dead.items():
        entries = inv.packs[name].entries
        if len(gone) == len(entries):
            continue
        dropped = set(gone)
        live_ids = [oid for oid in entries if oid not in dropped]
        fetch_objects(ws.store, remote, live_ids, jobs=8, pack_threshold=threshold, inventory=inv)
        sized = [(oid, entries[oid][1]) for oid in live_ids]
        for data, index in build_packs(ws.store, sized, 1 << 62):
            remote.write_bytes(f"packs/{index.name}.pack", data)
            remote.barrier()
            remote.write_bytes(f"packs/{index.name}.idx", index.to_bytes())
        repacked += 1
    return repacked


def _tally(
    inv: Inventory,
    dead: dict[str, list[str]],
    loose: list[str],
    held: dict[str, Retention],
    *,
    kept: int,
    dry_run: bool,
    repacked: int,
) -> GcResult:
    """Count what went (or would go) and what Object Lock keeps: a held loose object is one, a
    held pack is its dead objects."""
    held_packs = [n for n in dead if _holds(held, n)]
    sizes = {n: sum(inv.packs[n].entries[oid][1] for oid in oids) for n, oids in dead.items()}
    retained = sum(rel in held for rel in loose) + sum(len(dead[n]) for n in held_packs)
    retained_bytes = sum(sizes[n] for n in held_packs)
    ends = sorted(r.until for r in held.values() if r.until is not None)
    return GcResult(
        removed=len(loose) + sum(len(oids) for oids in dead.values()) - retained,
        bytes=sum(sizes.values()) - retained_bytes,
        kept=kept,
        dry_run=dry_run,
        repacked=repacked,
        retained=retained,
        retained_bytes=retained_bytes,
        retention_ends=(ends[0], ends[-1]) if ends else None,
        legal_holds=sum(r.legal_hold for r in held.values()),
    )


def _retained_message(remote: str, r: GcResult) -> str:
    did, stay = ("would remove", "would stay") if r.dry_run else ("removed", "stay")
    out = (
        f"remote {remote}: {did} {r.removed} object(s); {r.retained} more are under S3 Object "
        f"Lock and {stay} on the remote, readable"
    )
    if r.retention_ends:
        first, last = (f"{d:%Y-%m-%d %H:%M} UTC" for d in r.retention_ends)
        out += f": retained until {last}" if first == last else f": retained until {first} … {last}"
    if r.legal_holds:
        out += f"; {r.legal_holds} file(s) are under a legal hold, kept until it is lifted"
    return out + f". Run `tether gc --remote {remote}` again after that to collect them"
