"""``tether remote add``, ``push``, ``fetch`` and ``pull``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from tether._types import NO_PROGRESS, Callback
from tether.config import duration_seconds, is_secret, set_value
from tether.errors import (
    ConfigError,
    FormatError,
    MissingObjectError,
    RemoteError,
    TetherError,
    UsageError,
)
from tether.objects import quarantine
from tether.objects.graph import RECORD_HEADER, children, reachable
from tether.objects.refs import LOCAL
from tether.objects.remote import Inventory, Remote, storage_options
from tether.objects.remote_locks import LockTimes, hold_push
from tether.objects.remote_roots import publish
from tether.objects.transfer import (
    TransferResult,
    fetch_objects,
    fetch_refs,
    push_objects,
    push_refs,
)
from tether.objects.tree import HEADER as TREE_HEADER
from tether.workspace.checkout import CheckoutResult, apply_checkout, plan_checkout
from tether.workspace.repo import Workspace
from tether.workspace.roots import pairs, roots


def remotes(ws: Workspace) -> dict[str, str]:
    return {name: str(s.get("url", "")) for name, s in ws.config.section("remote").items()}


def add_remote(ws: Workspace, name: str, url: str, *, default: bool = True) -> None:
    if is_secret("url", url):
        raise ConfigError(
            "that URL carries a password and tether.toml is committed: add the remote without "
            f"it, then `tether config set remote.{name}.password VALUE --local`"
        )
    set_value(ws.root, f"remote.{name}.url", url, local=False)
    if default and not ws.config.get("core.remote"):
        set_value(ws.root, "core.remote", name, local=False)
    ws.__dict__.pop("config", None)


def open_remote(ws: Workspace, name: str | None = None) -> Remote:
    known = remotes(ws)
    name = name or ws.config.get("core.remote") or (next(iter(known)) if len(known) == 1 else None)
    if not name:
        raise UsageError("no remote is set up: run `tether remote add NAME URL` first")
    if name not in known:
        raise UsageError(
            f"there is no remote named {name!r} (known: {', '.join(known) or 'none'}): "
            "`tether remote add NAME URL` adds one"
        )
    settings = ws.config.section(f"remote.{name}")
    return Remote(name, known[name], storage_options(settings))


@dataclass(frozen=True)
class PushResult:
    objects: TransferResult
    refs: TransferResult
    remote: str


def _jobs(ws: Workspace) -> int:
    return int(ws.config.get("transfer.jobs"))


def shared_refs(ws: Workspace) -> dict[str, tuple[str, ...]]:
    """Every ref but this machine's own (``local/``)."""
    return {name: ids for name, ids in ws.refs.items() if not name.startswith(LOCAL)}


def lock_times(ws: Workspace) -> LockTimes:
    """``gc.stale_lock`` and ``gc.lock_wait``: when a remote lock is dead, how long to wait."""
    return LockTimes(
        stale=duration_seconds(ws.config.get("gc.stale_lock")),
        wait=duration_seconds(ws.config.get("gc.lock_wait")),
    )


class _Fetcher:
    """``fetch_objects`` into this cache from ``remote``, with the workspace's settings; what
    only the remote's quarantine holds is brought back into use first."""

    def __init__(self, ws: Workspace, remote: Remote, inv: Inventory) -> None:
        self.ws, self.remote, self.inv = ws, remote, inv
        self.restored = 0
        self.objects = self.bytes = 0  # over every call

    def __call__(self, ids: set[str], callback: Callback = NO_PROGRESS) -> TransferResult:
        self.restored += _bring_back(self.ws, self.remote, self.inv, ids)
        done = fetch_objects(
            self.ws.store,
            self.remote,
            ids,
            jobs=_jobs(self.ws),
            pack_threshold=self.ws.config.local_pack_threshold(),
            callback=callback,
            inventory=self.inv,
        )
        self.objects += done.objects
        self.bytes += done.bytes
        return done


def _bring_back(ws: Workspace, remote: Remote, inv: Inventory, ids: set[str]) -> int:
    """Restore from quarantine what this cache lacks and only the quarantine has, under a push
    lock (so no gc deletes it meanwhile), on a fresh listing; how many came back."""
    need = ws.store.missing(set(ids)) - inv.ids()
    if not need or not inv.quarantine:
        return 0
    if not need & quarantine.locate(remote, inv).keys():
        return 0
    with hold_push(remote, lock_times(ws)) as lock:
        assert lock.inventory is not None
        vars(inv).update(vars(lock.inventory))
        restored = quarantine.restore(remote, inv, need)
        lock.confirm()
    return restored


@contextmanager
def _changed_under_us(remote: Remote) -> Iterator[None]:
    """A file listed on the remote that is gone when read: a gc ran meanwhile (it deleted an
    expired quarantine batch, or moved an object into quarantine). What was fetched stays in
    the cache, so running the command again resumes."""
    try:
        yield
    except FileNotFoundError as exc:
        raise RemoteError(
            f"remote {remote.name} changed under us (a gc ran meanwhile; "
            f"{exc.filename or exc} is gone): run the command again"
        ) from exc


def _on_remote(remote: Remote, inv: Inventory) -> set[str]:
    """Every id the remote can serve: in use, or in quarantine (brought back when fetched)."""
    return inv.ids() | quarantine.locate(remote, inv).keys()


def push(
    ws: Workspace,
    remote_name: str | None = None,
    *,
    all_commits: bool = False,
    callback: Callback = NO_PROGRESS,
) -> PushResult:
    """Send what the pointers and refs need. Under the push's own remote lock (no gc runs
    meanwhile), first publish every id they name as roots (see
    :mod:`tether.objects.remote_roots`), then bring back from quarantine what the remote put
    aside, then send only what it lacks, then refs."""
    remote = open_remote(ws, remote_name)
    with ws.writing(), hold_push(remote, lock_times(ws)) as lock:
        inv = lock.inventory
        assert inv is not None
        remote.ensure_format(inv)
        found = roots(ws, all_commits=all_commits)
        live = reachable(ws.store, pairs(found))
        shared = shared_refs(ws)
        travel = {oid for ids in shared.values() for oid in ids}
        publish(remote, {r.id for r in found if r.kind != "ref" or r.id not in travel}, shared)
        restored = quarantine.restore(remote, inv, live.ids | live.missing)
        unsendable = live.missing - inv.ids()
        if unsendable:
            raise MissingObjectError(unsendable, hint=_unsendable_hint(live.needed_by, unsendable))
        send = partial(
            push_objects,
            ws.store,
            remote,
            jobs=_jobs(ws),
            pack_threshold=int(ws.config.get("transfer.pack_threshold")),
            pack_size=int(ws.config.get("transfer.pack_size")),
            inventory=inv,
        )
        # leaves first, then the trees and records that name them: a remote never holds a
        # manifest whose files are not there yet
        first = send(live.ids - live.containers, callback=callback)
        second = send(live.containers)
        first.objects += second.objects
        first.bytes += second.bytes
        first.packs += second.packs
        first.already = len(live.ids) - first.objects
        first.restored = restored
        refs = push_refs(shared, remote, inv)
        lock.confirm()
    first.requests = remote.requests
    return PushResult(first, refs, remote.name)


def _unsendable_hint(needed_by: dict[str, str], ids: set[str]) -> str:
    who = sorted({needed_by[i] for i in ids})
    hint = f"needed by {', '.join(who[:3])}; neither this cache nor the remote has them"
    runs = sorted(w.removeprefix("ref runs/") for w in who if w.startswith("ref runs/"))
    if runs:
        hint += (
            ": push them from the clone that has them; a run started while its data was not "
            f"here can be dropped instead (`tether runs delete {runs[0]}`, then "
            "`tether runs purge`)"
        )
    return hint


def fetch(
    ws: Workspace,
    remote_name: str | None = None,
    paths: list[str] | None = None,
    *,
    callback: Callback = NO_PROGRESS,
    refused: dict[str, TetherError] | None = None,
) -> TransferResult:
    """Bring the objects the selected pointers need (and new refs) into the cache. A pointer
    that cannot be read, or whose manifest is malformed, is skipped and the others fetched;
    then the first such error is raised, unless ``refused`` is given to collect them (a pull
    goes on to check out the rest, and its checkout names them)."""
    remote = open_remote(ws, remote_name)
    skipped: dict[str, TetherError] = {} if refused is None else refused
    selected = ws.select(paths, refused=skipped)
    with ws.writing(), _changed_under_us(remote):
        inv = remote.inventory()
        remote.check_format(inv)
        get = _Fetcher(ws, remote, inv)
        trees = {t.ptr.id for t, _ in selected if t.ptr.kind == "dir"}
        get(trees)
        blobs: set[str] = set()
        complete = []
        for t, sub in selected:
            if t.ptr.kind != "dir":
                blobs.add(t.ptr.id)
                continue
            try:  # only the shape is checked here: paths are checked where they are written
                blobs |= ws.store.load_tree(t.ptr.id).under(sub).blob_ids()
            except FormatError as exc:
                skipped[t.pointer] = FormatError(f"{t.pointer}: {exc}")
                continue
            if not sub:
                complete.append(t.ptr.id)
        more = get(blobs, callback=callback)
        for oid in complete:
            ws.statcache.mark_complete(oid)
        if paths is None:
            have = shared_refs(ws)
            new_refs, conflicts = fetch_refs(have, remote, inv)
            # every root, not only new ones: an object fsck --repair removed, or one deleted
            # by hand, is named by a ref this clone had already; a root whose closure was
            # whole at the last pull is skipped (fsck and gc forget those marks)
            named = {oid for ids in (*have.values(), *new_refs.values()) for oid in ids}
            todo = {oid for oid in named if not ws.statcache.is_complete(oid)}
            if not _fetch_closure(ws, todo, get, _on_remote(remote, inv)):
                for oid in todo:
                    ws.statcache.mark_complete(oid)
            for name, ids in new_refs.items():
                ws.refs.set(name, ids)
            more.refs = len(new_refs)
            more.ref_conflicts = conflicts
    more.objects, more.bytes = get.objects, get.bytes
    more.requests = remote.requests
    more.restored = get.restored
    if refused is None and skipped:
        first = next(iter(skipped.values()))
        if len(skipped) == 1:
            raise first
        raise type(first)("\n".join(str(e) for e in skipped.values()))
    return more


def _fetch_closure(
    ws: Workspace, ids: set[str], get: Callable[[set[str]], object], available: set[str]
) -> set[str]:
    """Fetch ``ids`` and everything the records and manifests among them name, level by level
    (a run's record, then its environment, log, metric history and input folders' files). A
    record or manifest already here is walked too: a whole pack fetched for another object can
    bring a manifest without its files. What is still missing afterwards."""
    seen: set[str] = set()
    todo = set(ids)
    missing: set[str] = set()
    while todo:
        seen |= todo
        get(todo & available)  # what the cache has already is skipped
        below: set[str] = set()
        files: set[str] = set()
        for oid in todo:
            if not ws.store.has(oid):
                continue
            head = ws.store.read_head(oid, 32)
            try:
                if head.startswith(TREE_HEADER):  # a folder's entries are files: no deeper
                    files.update(children(ws.store.read_bytes(oid), oid))
                elif head.startswith(RECORD_HEADER):
                    below.update(children(ws.store.read_bytes(oid), oid))
            except FormatError:
                continue  # a malformed manifest names nothing to fetch; whoever reads it says so
        get(ws.store.missing(files) & available)
        missing |= ws.store.missing(files) | {oid for oid in todo if not ws.store.has(oid)}
        todo = below - seen
    return missing


def remote_spec(ws: Workspace, remote_name: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(name, url, storage options) of a remote: what a worker elsewhere needs to open it."""
    remote = open_remote(ws, remote_name)
    return remote.name, remote.url, storage_options(ws.config.section(f"remote.{remote.name}"))


def push_ids(ws: Workspace, ids: set[str], remote_name: str | None = None) -> int:
    """Push these objects and everything they name (a folder's files); how many were sent."""
    remote = open_remote(ws, remote_name)
    with ws.writing(), hold_push(remote, lock_times(ws)) as lock:
        inv = lock.inventory
        assert inv is not None
        remote.ensure_format(inv)
        live = reachable(ws.store, [("pipeline deps", oid) for oid in sorted(ids)])
        if live.missing:
            raise MissingObjectError(live.missing, hint="a stage's deps must be in the cache")
        publish(remote, ids)
        quarantine.restore(remote, inv, live.ids)
        sent = push_objects(
            ws.store,
            remote,
            live.ids,
            jobs=_jobs(ws),
            pack_threshold=int(ws.config.get("transfer.pack_threshold")),
            pack_size=int(ws.config.get("transfer.pack_size")),
            inventory=inv,
        )
        lock.confirm()
        return sent.objects


def fetch_ids(ws: Workspace, ids: list[str], remote_name: str | None = None) -> int:
    """Fetch these objects (and what records and folders among them name) from a remote;
    how many it had. Without any remote configured, nothing."""
    if not remotes(ws):
        return 0
    remote = open_remote(ws, remote_name)
    with ws.writing(), _changed_under_us(remote):
        inv = remote.inventory()
        remote.check_format(inv)
        wanted = set(ids)
        available = _on_remote(remote, inv)
        _fetch_closure(ws, wanted, _Fetcher(ws, remote, inv), available)
        return len(wanted & available)


def pull(
    ws: Workspace,
    remote_name: str | None = None,
    paths: list[str] | None = None,
    *,
    force: bool = False,
    callback: Callback = NO_PROGRESS,
    checkout_callback: Callback = NO_PROGRESS,
    fetched_hook: Callable[[TransferResult], object] = lambda _r: None,
) -> tuple[TransferResult, CheckoutResult]:
    """Fetch, then check out. ``fetched_hook`` sees the fetch's result before the checkout
    starts (the runs it brought are indexed there), so a checkout that refuses or fails loses
    nothing the fetch did."""
    fetched = fetch(ws, remote_name, paths, callback=callback, refused={})
    fetched_hook(fetched)
    plan = plan_checkout(ws, paths)
    done = apply_checkout(ws, plan, force=force, callback=checkout_callback, command="pull")
    return fetched, done
