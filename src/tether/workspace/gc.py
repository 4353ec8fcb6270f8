"""``tether gc``: delete what no root reaches, locally (under the exclusive store lock) or on a
remote (under the remote's ``locks/gc``)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from tether.errors import RemoteError, UsageError
from tether.objects.graph import reachable
from tether.objects.packs import build_packs
from tether.objects.remote import Remote
from tether.objects.transfer import fetch_objects
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
    """Remove from a remote what no pointer of this clone and no ref on the remote needs."""
    remote = open_remote(ws, remote_name)
    _take_lock(remote)
    try:
        return _collect(ws, remote, dry_run=dry_run, all_commits=all_commits)
    finally:
        remote.delete(["locks/gc"])


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


def _collect(ws: Workspace, remote: Remote, *, dry_run: bool, all_commits: bool) -> GcResult:
    inv = remote.inventory()
    threshold = ws.config.local_pack_threshold()
    root_ids = roots(ws, all_commits=all_commits)
    for name, text in remote.list_refs(inv).items():
        root_ids.extend(Root(f"remote ref {name}", oid, "ref") for oid in text.split())
    with ws.writing():  # manifests and records this clone lacks are fetched to read their links
        wanted = {r.id for r in root_ids if r.may_contain} & inv.ids()
        fetch_objects(ws.store, remote, wanted, jobs=8, pack_threshold=threshold, inventory=inv)
    live = reachable(ws.store, pairs(root_ids))
    keep = live.ids | live.missing
    dead_loose = sorted(inv.loose - keep)
    removed, size, repacked = len(dead_loose), 0, 0
    dead_packs, partial = [], []
    for name, index in inv.packs.items():
        dead = [oid for oid in index.entries if oid not in keep]
        if len(dead) == len(index.entries):
            dead_packs.append(name)
        elif dead:
            partial.append((name, [oid for oid in index.entries if oid in keep]))
        removed += len(dead)
        size += sum(index.entries[oid][1] for oid in dead)
    if dry_run:
        return GcResult(removed, size, len(keep), True)
    # rewrite partly dead packs: the new pack and index land before the old ones go away
    for name, live_ids in partial:
        fetch_objects(ws.store, remote, live_ids, jobs=8, pack_threshold=threshold, inventory=inv)
        sized = [(oid, inv.packs[name].entries[oid][1]) for oid in live_ids]
        for data, index in build_packs(ws.store, sized, 1 << 62):
            remote.write_bytes(f"packs/{index.name}.pack", data)
            remote.barrier()
            remote.write_bytes(f"packs/{index.name}.idx", index.to_bytes())
        dead_packs.append(name)
        repacked += 1
    remote.delete([f"packs/{n}.idx" for n in dead_packs])
    remote.delete(
        [f"packs/{n}.pack" for n in dead_packs] + [Remote.object_path(o) for o in dead_loose]
    )
    remote.delete(remote.stale_tmp())
    return GcResult(removed, size, len(keep), False, repacked)
