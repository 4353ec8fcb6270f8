"""Locks on a remote, as restic keeps them: every push holds its own, a gc holds one alone.

A push creates ``locks/push-<token>`` (a name nobody else uses), then lists the locks: while a
gc's lock is live it takes its own back and waits (``gc.lock_wait``), then refuses. A gc
creates ``locks/gc`` by a conditional create that only one caller can win (S3 PutObject with
``If-None-Match: *``; on a folder a rename of a prepared folder, which fails onto a non-empty
one), then waits for every live push lock to go, and refuses if they do not. Both orders
create-then-list, so of a push and a gc starting together at least one sees the other.

A holder refreshes its lock (a heartbeat) every sixth of ``gc.stale_lock``; a lock whose last
refresh, by the store's own clock, is older than that is dead: it blocks nobody, and the next
gc removes it. Every time compared is the store's (S3 LastModified and the Date of its reply,
a folder's mtimes), never a client's clock.

Removal is conditional, so an owner that was judged dead can never remove a lock someone else
holds now: on S3 a DeleteObject with ``If-Match`` the ETag the owner (or the breaker) saw (every
refresh writes new bytes, so a new ETag); on a folder the lock is a folder holding
``owner-<token>.json``, the owner unlinks only its own file and then removes the folder only if
it is empty, and a breaker moves the dead owner's file aside and puts it back if it was
refreshed meanwhile.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tether._fs import unique_suffix
from tether.errors import LockError
from tether.objects.retention import error_code

if TYPE_CHECKING:
    from tether.objects.remote import Inventory, Remote

GC = "gc"
PUSH = "push-"
POLL_SECONDS = 2.0
CONFLICT = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")


@dataclass(frozen=True)
class LockEntry:
    """A lock as a listing shows it."""

    name: str  # "gc" or "push-<token>"
    time: float  # its last refresh, by the store's clock
    tag: str  # S3: its ETag; folder: its owner file's path, relative to the remote

    @property
    def exclusive(self) -> bool:
        return self.name == GC


def lock_entry(rel: str, parts: list[str], when: float, etag: str) -> LockEntry | None:
    """The lock a listed file under ``locks/`` is, if any: ``locks/<name>`` on S3 (tagged by
    its ETag), ``locks/<name>/owner-<token>.json`` on a folder (tagged by its path)."""
    name = parts[0]
    if name != GC and not name.startswith(PUSH):
        return None
    if len(parts) == 1:
        return LockEntry(name, when, etag)
    if parts[1].startswith("owner-") and parts[1].endswith(".json"):
        return LockEntry(name, when, rel)
    return None


@dataclass(frozen=True)
class LockTimes:
    stale: float  # seconds without a refresh after which a lock is dead
    wait: float  # seconds to wait for a conflicting lock before refusing
    beat: float | None = None  # seconds between refreshes (default: a sixth of ``stale``)

    @property
    def heartbeat(self) -> float:
        return self.beat if self.beat is not None else max(self.stale / 6, 1.0)


def _body(kind: str, token: str, beat: int) -> bytes:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    doc = {
        "tether": "lock",
        "format": 1,
        "kind": kind,
        "token": token,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "user": user,
        "beat": beat,  # a new ETag at every refresh
    }
    return json.dumps(doc).encode()


# -- the two stores ---------------------------------------------------------------------------
class _S3Locks:
    def __init__(self, remote: Remote) -> None:
        self.r = remote

    def _call(self, op: str, rel: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key, _ = self.r.fs.split_path(self.r.path(rel))
        self.r.count()
        try:
            out: dict[str, Any] = self.r.fs.call_s3(op, Bucket=bucket, Key=key, **kwargs)
        finally:
            self.r.fs.invalidate_cache(self.r.path(rel))
        return out

    def create(self, name: str, _token: str, body: bytes) -> str | None:
        try:
            with self.r.bucket_needed():
                out = self._call("put_object", f"locks/{name}", Body=body, IfNoneMatch="*")
        except FileExistsError:
            return None
        except OSError as exc:
            if error_code(exc) in CONFLICT:
                return None
            raise
        return str(out["ETag"])

    def refresh(self, name: str, tag: str, body: bytes) -> str | None:
        try:
            out = self._call("put_object", f"locks/{name}", Body=body, IfMatch=tag)
        except (FileNotFoundError, FileExistsError):
            return None
        except OSError as exc:
            if error_code(exc) in CONFLICT:
                return None
            raise
        return str(out["ETag"])

    def release(self, name: str, tag: str) -> None:
        self.remove(LockEntry(name, 0.0, tag), "")

    def remove(self, entry: LockEntry, _me: str) -> bool:
        """Delete the lock only if it still has the ETag seen."""
        try:
            self._call("delete_object", f"locks/{entry.name}", IfMatch=entry.tag)
        except FileNotFoundError:
            return False
        except OSError as exc:
            code = error_code(exc)
            if code in CONFLICT:
                return False
            if code != "NotImplemented":
                raise
            # a store without conditional deletes: compare, then delete (a narrow window)
            if self.time_of(entry.name, entry.tag) is None:
                return False
            self._call("delete_object", f"locks/{entry.name}")
        return True

    def listing(self, token: str) -> tuple[dict[str, LockEntry], float]:
        base = self.r.path("locks")
        bucket, prefix, _ = self.r.fs.split_path(base)
        self.r.count()
        out = self.r.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix + "/")
        found: dict[str, LockEntry] = {}
        for item in out.get("Contents", []):
            name = str(item["Key"])[len(prefix) + 1 :]
            if "/" not in name and (name == GC or name.startswith(PUSH)):
                when = item["LastModified"].timestamp()
                found[name] = LockEntry(name, when, str(item["ETag"]))
        date = out.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = parsedate_to_datetime(date).timestamp() if date else 0.0
        return found, max([now, *(e.time for e in found.values())])

    def read(self, entry: LockEntry) -> bytes:
        return self.r.read_bytes(f"locks/{entry.name}")

    def time_of(self, name: str, tag: str) -> float | None:
        try:
            out = self._call("head_object", f"locks/{name}")
        except FileNotFoundError:
            return None
        return float(out["LastModified"].timestamp()) if out.get("ETag") == tag else None


class _FolderLocks:
    def __init__(self, remote: Remote) -> None:
        self.r = remote
        self.top = remote.path("locks")

    def _owner(self, name: str, token: str) -> str:
        return f"locks/{name}/owner-{token}.json"

    def create(self, name: str, token: str, body: bytes) -> str | None:
        os.makedirs(self.top, exist_ok=True)
        ready = os.path.join(self.top, f".new-{unique_suffix(8)}")
        os.mkdir(ready)
        with open(os.path.join(ready, f"owner-{token}.json"), "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        self.r.count()
        try:
            os.rename(ready, os.path.join(self.top, name))  # fails onto a non-empty folder
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
            os.unlink(os.path.join(ready, f"owner-{token}.json"))
            os.rmdir(ready)
            return None
        return self._owner(name, token)

    def refresh(self, _name: str, tag: str, _body: bytes) -> str | None:
        self.r.count()
        try:
            os.utime(self.r.path(tag))  # no times given: the filesystem's own now
        except FileNotFoundError:
            return None
        return tag

    def release(self, _name: str, tag: str) -> None:
        """The owner's own file (its token is in the name), then the folder if empty."""
        self.r.count()
        try:
            os.unlink(self.r.path(tag))
        except FileNotFoundError:
            return  # removed as dead: whatever is there now is someone else's
        self._rmdir_if_empty(os.path.dirname(self.r.path(tag)))

    @staticmethod
    def _rmdir_if_empty(path: str) -> None:
        try:
            os.rmdir(path)  # only when empty: never a lock someone holds
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise

    def remove(self, entry: LockEntry, me: str) -> bool:
        """Remove ``entry`` only as it was seen: the owner file named there, with the time
        seen there. A file refreshed since goes back where it was."""
        path = self.r.path(entry.tag)
        aside = os.path.join(self.top, f".gone-{me}-{unique_suffix(4)}")
        self.r.count()
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if os.stat(aside).st_mtime != entry.time:  # refreshed since it was seen: not ours
            try:
                os.rename(aside, path)
            except FileNotFoundError:  # its folder went meanwhile: it is no lock any more
                os.unlink(aside)
            return False
        os.unlink(aside)
        self._rmdir_if_empty(os.path.dirname(path))
        return True

    def listing(self, token: str) -> tuple[dict[str, LockEntry], float]:
        found: dict[str, LockEntry] = {}
        os.makedirs(self.top, exist_ok=True)
        clock = os.path.join(self.top, f".clock-{token}")
        with open(clock, "wb"):
            pass
        self.r.count()
        try:
            now = os.stat(clock).st_mtime
        finally:
            os.unlink(clock)
        for name in os.listdir(self.top):
            if name != GC and not name.startswith(PUSH):
                continue
            try:
                owners = [
                    f for f in os.listdir(os.path.join(self.top, name)) if f.endswith(".json")
                ]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for owner in owners:
                rel = f"locks/{name}/{owner}"
                try:
                    when = os.stat(self.r.path(rel)).st_mtime
                except FileNotFoundError:
                    continue
                found[name] = LockEntry(name, when, rel)
        return found, max([now, *(e.time for e in found.values())])

    def read(self, entry: LockEntry) -> bytes:
        with open(self.r.path(entry.tag), "rb") as f:
            return f.read()

    def time_of(self, _name: str, tag: str) -> float | None:
        try:
            return os.stat(self.r.path(tag)).st_mtime
        except FileNotFoundError:
            return None


Store = _S3Locks | _FolderLocks


def _store(remote: Remote) -> Store:
    return _FolderLocks(remote) if remote.is_local else _S3Locks(remote)


# -- a lock held ------------------------------------------------------------------------------
class HeldLock:
    """A lock this process holds, refreshed by a heartbeat thread until released."""

    def __init__(
        self, remote: Remote, store: Store, name: str, token: str, tag: str, times: LockTimes
    ) -> None:
        self.remote, self.store, self.name, self.token = remote, store, name, token
        self.tag = tag
        self.times = times
        self.lost = False
        self.beats = 0
        self.refreshed = threading.Event()  # set at every refresh (what tests wait on)
        self.taken_at = 0.0  # the store's time when it was taken (set by hold_*)
        self.inventory: Inventory | None = None  # the listing a push took it with
        self._written = time.monotonic()  # this process's clock: only to skip needless checks
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"tether-{name}", daemon=True)
        self._thread.start()

    @property
    def kind(self) -> str:
        return "gc" if self.name == GC else "push"

    def _beat(self) -> None:
        while not self._stop.wait(self.times.heartbeat):
            try:
                self.refresh()
            except LockError:
                return
            except Exception:  # a failed refresh is retried at the next beat
                continue

    def refresh(self) -> None:
        """Write the lock again (a new time on the store): the proof it is still this
        process's. A lock someone removed as dead is lost, and this raises."""
        with self._mutex:
            self.check()
            if self._stop.is_set():
                return
            self.beats += 1
            with self.remote.translated(f"refreshing its lock {self.name}"):
                tag = self.store.refresh(
                    self.name, self.tag, _body(self.kind, self.token, self.beats)
                )
            if tag is None:
                self.lost = True
                raise LockError(self._lost_message())
            self.tag = tag
            self._written = time.monotonic()
            self.refreshed.set()

    def confirm(self) -> None:
        """Make sure the lock is still this process's before a step that counts on it: no
        request while its last write is recent (nobody may judge it dead for ``stale``), a
        refresh otherwise."""
        if time.monotonic() - self._written < self.times.stale / 2:
            self.check()
        else:
            self.refresh()

    def check(self) -> None:
        """Raise when the lock was taken away (judged dead while this process stalled)."""
        if self.lost:
            raise LockError(self._lost_message())

    def _lost_message(self) -> str:
        return (
            f"the {self.kind} lock on remote {self.remote.name} was removed while this command "
            "held it (it went unrefreshed for longer than gc.stale_lock): run the command again"
        )

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._mutex, self.remote.translated(f"releasing its lock {self.name}"):
            self.store.release(self.name, self.tag)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.release()
            return
        # the error that ended the command says what happened, not a failed release; a lock
        # left behind goes dead after gc.stale_lock
        with suppress(Exception):
            self.release()


def _owner(store: Store, entry: LockEntry) -> dict[str, Any]:
    """What the lock says of its owner (empty when it cannot be read)."""
    try:
        doc = json.loads(store.read(entry))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _pid_gone(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it exists
        return False
    return False


def is_dead(store: Store, entry: LockEntry, now: float, times: LockTimes) -> bool:
    """Not refreshed for ``gc.stale_lock`` by the store's clock, or held by a process on this
    very host that no longer exists (killed, say, by SIGKILL), as restic judges its locks."""
    if now - entry.time >= times.stale:
        return True
    doc = _owner(store, entry)
    return doc.get("host") == socket.gethostname() and _pid_gone(doc.get("pid"))


def _who(store: Store, entry: LockEntry, now: float) -> str:
    doc = _owner(store, entry)
    who = f"{doc.get('user')}@{doc.get('host')} (pid {doc.get('pid')})" if doc else "someone"
    return f"{who}, refreshed {_age(now - entry.time)} ago"


def _dead_in(entry: LockEntry, now: float, times: LockTimes) -> str:
    return _age(times.stale - (now - entry.time))


def _waiting(what: str, wait: float) -> None:
    """One line on stderr before a wait, so nobody stares at a silent terminal."""
    with suppress(OSError, ValueError):
        print(f"waiting for {what} (up to {_age(wait)})…", file=sys.stderr, flush=True)


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


Sleep = Callable[[float], None]


def hold_push(remote: Remote, times: LockTimes, sleep: Sleep = time.sleep) -> HeldLock:
    """A push's own lock, once no live gc lock is in the way (waiting ``times.wait`` for it).
    The remote's listing taken right after the lock was created (which is what shows a gc's
    lock) is the push's inventory: ``held.inventory``."""
    store = _store(remote)
    token = unique_suffix(8)
    name = PUSH + token
    deadline = time.monotonic() + times.wait
    waited = False
    while True:
        with remote.translated("taking a push lock"):
            tag = store.create(name, token, _body("push", token, 0))
            if tag is None:  # a token is unique: only a store that lost the write says so
                raise LockError(f"remote {remote.name} refused the push lock {name}: try again")
        try:
            inv = remote.inventory()
        except BaseException:
            with suppress(Exception):  # left behind, it goes dead after gc.stale_lock
                store.release(name, tag)
            raise
        now = max([e.time for e in inv.locks.values()], default=0.0)  # its own is there
        gc = inv.locks.get(GC)
        if gc is None or is_dead(store, gc, now, times):
            held = HeldLock(remote, store, name, token, tag, times)
            held.taken_at, held.inventory = now, inv
            return held
        with remote.translated("releasing its push lock"):
            store.release(name, tag)
            who = _who(store, gc, now)
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockError(
                f"remote {remote.name} is being garbage-collected by {who}: run the command "
                "again when it is done. Its lock counts as dead in "
                f"{_dead_in(gc, now, times)} (gc.stale_lock) if it is not refreshed; if that gc "
                f"is surely not running any more, delete {_lock_path(remote, gc)} on the "
                "remote (gc.lock_wait sets how long to wait for it)"
            )
        if not waited:
            waited = True
            _waiting(f"the gc by {who}", times.wait)
        sleep(min(POLL_SECONDS, left))


def hold_gc(remote: Remote, times: LockTimes, sleep: Sleep = time.sleep) -> HeldLock:
    """The remote's exclusive gc lock, once every live push lock has gone (waiting
    ``times.wait`` for them). Dead locks met on the way are removed."""
    store = _store(remote)
    token = unique_suffix(8)
    deadline = time.monotonic() + times.wait
    held: HeldLock | None = None
    quick = 3  # retries without waiting, after a dead gc lock was removed
    waited = False
    try:
        while True:
            with remote.translated("taking the gc lock"):
                if held is None:
                    tag = store.create(GC, token, _body("gc", token, 0))
                    if tag is not None:
                        held = HeldLock(remote, store, GC, token, tag, times)
                found, now = store.listing(token)
                mine = {GC} if held is not None else set()
                others = [e for e in found.values() if e.name not in mine]
                dead = [e for e in others if is_dead(store, e, now, times)]
                for entry in dead:
                    store.remove(entry, token)
                live = [e for e in others if e not in dead]
                if held is not None and not live:
                    held.taken_at = now
                    return held
                if held is None and GC not in {e.name for e in live} and quick > 0:
                    quick -= 1
                    continue  # the gc lock is free now (it was dead, or just released)
                who = "; ".join(_who(store, e, now) for e in live[:3]) or "someone"
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not waited:
                waited = True
                _waiting(f"{len(live)} lock(s) held by {who}", times.wait)
            sleep(min(POLL_SECONDS, left))
            if held is not None:
                held.refresh()
    except BaseException:
        if held is not None:
            held.release()
        raise
    soonest = max(live, key=lambda e: e.time, default=None)
    when = _dead_in(soonest, now, times) if soonest else _age(times.stale)
    if held is not None:
        held.release()
        raise LockError(
            f"{len(live)} push(es) to remote {remote.name} are under way ({who}): run gc again "
            "when they are done (gc.lock_wait sets how long gc waits for them). The lock of a "
            f"push that died counts as dead once not refreshed for gc.stale_lock (in {when} "
            f"at the latest); if none is running, delete {_lock_path(remote, soonest)} on the "
            "remote"
        )
    raise LockError(
        f"remote {remote.name} is already being collected by {who}: wait for it to finish. Its "
        f"lock counts as dead in {when} (gc.stale_lock) if it is not refreshed; if that gc is "
        f"surely not running any more, delete {_lock_path(remote, soonest)} on the remote"
    )


def _lock_path(remote: Remote, entry: LockEntry | None) -> str:
    """Where a lock is, as a user would delete it."""
    return f"{remote.url.rstrip('/')}/locks/{entry.name}" if entry else "its locks/ folder"
