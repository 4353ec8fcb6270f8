"""A remote: objects, packs and refs under one fsspec URL (a folder, ``s3://bucket/prefix``…).

Layout::

    FORMAT                 {"tether":"remote","format":1}
    objects/ab/cdef…       large objects, one file each
    packs/<name>.pack      small objects packed together; <name>.idx lists them
    refs/<name>            the same refs as .tether/refs
    roots/<hash>           the ids one push relied on (see :mod:`.remote_roots`)
    locks/gc, locks/push-… the gc's exclusive lock and each push's own (see :mod:`.remote_locks`)
    quarantine/<batch>/    what a gc took out of use: STAMP, objects/…, packs/… (see
                           :mod:`.quarantine`)

Every fsspec call goes through this class, so third-party errors become :class:`RemoteError`
here and the number of requests can be counted. On S3, ``objects/`` and ``packs/`` can be written
under Object Lock retention and are deleted version by version (see :mod:`.retention`).
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from tether._documents import read_document
from tether._fs import sync_filesystem, unique_suffix
from tether.errors import ConfigError, RemoteError, TetherError
from tether.hashing import PREFIX
from tether.objects import retention as s3lock
from tether.objects.packs import PackIndex
from tether.objects.remote_locks import LockEntry, lock_entry
from tether.objects.retention import Retention

FORMAT = 1
QUARANTINE = "quarantine"
ROOTS = "roots"


@dataclass
class Batch:
    """One gc's quarantine: what it took out of use, and when by the store's clock."""

    name: str
    stamp: float | None = None  # the STAMP file's time (S3 LastModified, folder mtime)
    loose: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)  # of loose objects
    packs: dict[str, set[str]] = field(default_factory=dict)  # name -> {"pack", "idx"} present
    indexes: dict[str, PackIndex] | None = None  # read on demand (see quarantine.load_indexes)

    def rel(self, *parts: str) -> str:
        return posixpath.join(QUARANTINE, self.name, *parts)


@dataclass
class Inventory:
    """What a remote holds, from one listing of loose objects and one read of all pack indexes.

    Only ``loose`` and ``packs`` are in use; ``quarantine`` is what gc took out of use (a push
    or fetch that needs it brings it back) and ``roots`` the published roots of pushes, with
    the store's time of each."""

    loose: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)  # of loose objects
    packs: dict[str, PackIndex] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)  # paths of ref files
    has_format: bool = False
    quarantine: dict[str, Batch] = field(default_factory=dict)
    roots: dict[str, float] = field(default_factory=dict)  # rel path -> store time
    locks: dict[str, LockEntry] = field(default_factory=dict)  # by name: gc, push-<token>

    def ids(self) -> set[str]:
        out = set(self.loose)
        for index in self.packs.values():
            out.update(index.entries)
        return out

    def pack_of(self) -> dict[str, str]:
        return {oid: name for name, index in self.packs.items() for oid in index.entries}


def storage_options(settings: dict[str, Any]) -> dict[str, Any]:
    """Map ``[remote.NAME]`` settings to fsspec options (S3 keys get s3fs's names).

    ``object_lock_mode`` and ``object_lock_days`` pass through: :class:`Remote` takes them out,
    so a worker opening the remote from these options writes under the same retention."""
    opts: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for key, value in settings.items():
        if key in ("url", "object_lock"):
            continue
        if key == "endpoint_url":
            client["endpoint_url"] = value
        elif key == "region":
            client["region_name"] = value
        elif key == "access_key_id":
            opts["key"] = value
        elif key == "secret_access_key":
            opts["secret"] = value
        else:
            opts[key] = value
    if client:
        opts["client_kwargs"] = client
    return opts


class Remote:
    def __init__(self, name: str, url: str, options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.name = name
        self.url = url
        options = dict(options or {})
        self.object_lock = s3lock.take_object_lock(name, options)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as exc:
            extra = " (install the s3 extra: pip install 'tether-ml[s3]')" if "s3" in url else ""
            raise RemoteError(f"cannot open remote {name} at {url}: {exc}{extra}") from exc
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        self.is_local = "file" in protocols
        self.is_s3 = "s3" in protocols
        if self.object_lock is not None and not self.is_s3:
            raise ConfigError(
                f"remote {name} sets object_lock_mode/object_lock_days, but S3 Object Lock needs "
                f"an s3:// remote and {url} is not one: remove them from [remote.{name}] in "
                "tether.toml, or point the remote at an S3 bucket created with Object Lock"
            )
        self.requests = 0
        self._lock = threading.Lock()
        self._lock_checked = False

    # -- plumbing --------------------------------------------------------------------------
    def count(self, n: int = 1) -> None:
        with self._lock:
            self.requests += n

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @contextmanager
    def translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except TetherError:
            raise
        except FileNotFoundError:
            raise
        except Exception as exc:  # fsspec/botocore/aiohttp raise many types; translate them all
            raise RemoteError(
                f"remote {self.name} ({self.url}) failed while {what}: {exc}. Check that it is "
                "reachable and your credentials; running the command again resumes where it stopped"
            ) from exc

    @staticmethod
    def object_path(oid: str) -> str:
        digest = oid[len(PREFIX) :]
        return f"objects/{digest[:2]}/{digest[2:]}"

    # -- format ----------------------------------------------------------------------------
    def ensure_format(self, inv: Inventory) -> None:
        """Check the remote's format (and the bucket's Object Lock when asked for), or write it
        on a new remote."""
        self.check_object_lock()
        if not inv.has_format:
            self.write_bytes("FORMAT", json.dumps({"tether": "remote", "format": 1}).encode())
            return
        self.check_format(inv)

    def check_format(self, inv: Inventory) -> None:
        """Refuse a remote written by a Tether with a format this one does not know."""
        if inv.has_format:
            read_document(self.read_bytes("FORMAT"), "remote", FORMAT, f"remote {self.name}")

    # -- object lock -----------------------------------------------------------------------
    @cached_property
    def bucket(self) -> str:
        return str(self.fs.split_path(self.root)[0])

    def _key(self, rel: str) -> str:
        return str(self.fs.split_path(self.path(rel))[1])

    def check_object_lock(self) -> None:
        """When the remote asks for Object Lock, refuse a bucket without it (once per remote)."""
        lock = self.object_lock
        if lock is None or self._lock_checked:
            return
        with self.translated("reading its Object Lock configuration"), self.bucket_needed():
            self.count()
            enabled = s3lock.bucket_lock_enabled(self.fs, self.bucket)
        if not enabled:
            raise RemoteError(
                f"remote {self.name} asks for S3 Object Lock ({lock.mode}, {lock.days} days) but "
                f"bucket {self.bucket} does not have Object Lock enabled, so nothing was written: "
                "use a bucket created with it (`aws s3api create-bucket "
                "--object-lock-enabled-for-bucket`), enable it on this versioned bucket "
                "(`aws s3api put-object-lock-configuration`), or remove object_lock_mode and "
                f"object_lock_days from [remote.{self.name}]"
            )
        self._lock_checked = True

    @cached_property
    def versioned(self) -> bool:
        """Whether deletes must name versions: an S3 bucket with versioning (which Object Lock
        implies). Credentials that may not ask (no s3:GetBucketVersioning) count as no."""
        if not self.is_s3:
            return False
        if self.object_lock is not None:
            return True
        with self.translated("reading its versioning"), self.bucket_needed():
            self.count()
            return bool(s3lock.bucket_versioned(self.fs, self.bucket))

    @contextmanager
    def bucket_needed(self) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as exc:
            raise RemoteError(
                f"bucket {self.bucket} of remote {self.name} does not exist: create it (with "
                "Object Lock, for a remote that asks for it) or fix the remote's URL"
            ) from exc

    def _lock_args(self, rel: str) -> dict[str, Any]:
        if self.object_lock is None or not rel.startswith(s3lock.LOCKED_DIRS):
            return {}
        return self.object_lock.put_args()

    def _relock(self, path: str, size: int, args: dict[str, Any]) -> None:
        """Retention again on a file sent in parts (some S3 stores ignore it on those)."""
        if args and size >= s3lock.MULTIPART_FROM:
            self.count()
            bucket, key, _ = self.fs.split_path(path)
            s3lock.set_retention(self.fs, bucket, key, args)

    def retained(self, rels: list[str]) -> dict[str, Retention]:
        """The files among ``rels`` that S3 Object Lock holds now (retention or legal hold),
        asked without deleting anything: empty on an unversioned remote."""
        if not rels or not self.versioned:
            return {}
        with self.translated("reading Object Lock retention"):
            keys = {self._key(r): r for r in rels}
            versions = s3lock.list_versions(self.fs, self.bucket, keys, self.count)
            held = s3lock.retention_of(self.fs, self.bucket, versions, self.count)
        return {keys[k]: r for k, r in held.items()}

    def collect(self, rels: list[str]) -> dict[str, Retention]:
        """Delete content-addressed files for good; return those S3 Object Lock keeps.

        On a versioned bucket every version goes, by version id (a plain delete would only
        hide the file behind a delete marker). A file with a version under retention or a legal
        hold is refused by S3 and stays whole and readable. Any other refusal is an error."""
        if not rels:
            return {}
        if not self.versioned:
            self.delete(rels)
            return {}
        with self.translated("deleting"):
            keys = {self._key(r): r for r in rels}
            versions = s3lock.list_versions(self.fs, self.bucket, keys, self.count)
            refused = s3lock.delete_versions(self.fs, self.bucket, versions, self.count)
            for rel in rels:
                self.fs.invalidate_cache(self.path(rel))
            held = s3lock.retention_of(
                self.fs, self.bucket, {k: versions[k] for k in refused}, self.count
            )
        stuck = {k: code for k, code in refused.items() if k not in held}
        if stuck:
            key, code = next(iter(sorted(stuck.items())))
            raise RemoteError(
                f"remote {self.name} refused to delete {len(stuck)} file(s) that no Object Lock "
                f"holds (e.g. {key}: {code}): check that your credentials allow "
                "s3:DeleteObjectVersion, then run gc again"
            )
        return {keys[k]: r for k, r in held.items()}

    # -- reading ---------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        """One listing of the whole remote, then one batched read of every pack index."""
        inv = Inventory()
        with self.translated("listing its objects"):
            self.count()
            base = self.root.strip("/") + "/"
            idx_paths = []
            for path, info in self._find_detail("").items():
                rel = path.lstrip("/")[len(base) :]
                parts = rel.split("/")
                if parts[-1].startswith("."):
                    continue  # a temp file
                if parts[0] == "objects" and len(parts) == 3:
                    oid = f"{PREFIX}{parts[1]}{parts[2]}"
                    inv.loose.add(oid)
                    inv.sizes[oid] = int(info.get("size") or 0)
                elif parts[0] == "packs" and rel.endswith(".idx"):
                    idx_paths.append(path)
                elif parts[0] == "refs":
                    inv.refs.append(path)
                elif rel == "FORMAT":
                    inv.has_format = True
                elif parts[0] == ROOTS and len(parts) == 2:
                    inv.roots[rel] = store_time(info)
                elif parts[0] == QUARANTINE and len(parts) >= 3:
                    _quarantined(inv, parts[1], parts[2:], info)
                elif parts[0] == "locks" and len(parts) in (2, 3):
                    entry = lock_entry(rel, parts[1:], store_time(info), str(info.get("ETag")))
                    if entry is not None:
                        inv.locks[entry.name] = entry
            if idx_paths:
                self.count(len(idx_paths))
                for path, data in self.fs.cat(idx_paths).items():
                    index = PackIndex.from_bytes(data, path)
                    inv.packs[index.name] = index
        return inv

    def _find(self, sub: str) -> list[str]:
        base = self.path(sub) if sub else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return list(found)

    def _find_detail(self, sub: str) -> dict[str, dict[str, Any]]:
        """Every file under ``sub`` with what the store says of it (its time: S3's
        LastModified, a folder's mtime); one listing, as :meth:`_find`."""
        base = self.path(sub) if sub else self.root
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        return dict(found)

    def read_bytes(self, rel: str) -> bytes:
        with self.translated(f"reading {rel}"):
            self.count()
            data: bytes = self.fs.cat_file(self.path(rel))
            return data

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Several small files at once (in parallel on S3), by path relative to the remote."""
        if not rels:
            return {}
        with self.translated("reading files"):
            self.count(len(rels))
            base = self.root.strip("/") + "/"
            got = self.fs.cat([self.path(r) for r in rels])
            return {p.lstrip("/")[len(base) :]: data for p, data in got.items()}

    def read_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        with self.translated(f"reading {rel}"):
            self.count(len(ranges))
            path = self.path(rel)
            starts = [off for off, _ in ranges]
            ends = [off + n for off, n in ranges]
            return list(self.fs.cat_ranges([path] * len(ranges), starts, ends))

    def download(self, rel: str, local: Path) -> None:
        with self.translated(f"downloading {rel}"):
            self.count()
            self.fs.get_file(self.path(rel), str(local))

    # -- writing ---------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.translated(f"writing {rel}"):
            self.count()
            path = self.path(rel)
            if self.is_local:
                tmp = self._local_tmp(path)
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                args = self._lock_args(rel)
                self.fs.pipe_file(path, data, **args)
                self._relock(path, len(data), args)

    def upload(self, local: Path, rel: str) -> None:
        with self.translated(f"uploading {rel}"):
            self.count()
            path = self.path(rel)
            if self.is_local:
                import shutil

                tmp = self._local_tmp(path)
                shutil.copyfile(local, tmp)
                os.replace(tmp, path)
            else:
                args = self._lock_args(rel)
                self.fs.put_file(str(local), path, **args)
                self._relock(path, os.path.getsize(local), args)

    def _local_tmp(self, path: str) -> str:
        parent = posixpath.dirname(path)
        os.makedirs(parent, exist_ok=True)
        return posixpath.join(parent, f".{posixpath.basename(path)}.{unique_suffix(4)}.tmp")

    def delete(self, rels: list[str]) -> None:
        """Plain delete, for files that are rewritten (refs, locks): on a versioned bucket their
        old versions stay. Content-addressed files go through :meth:`collect`."""
        if not rels:
            return
        with self.translated("deleting"):
            self.count(max(1, len(rels) // 1000))
            self.fs.rm([self.path(r) for r in rels])

    def copy_files(self, pairs: list[tuple[str, str]]) -> None:
        """Copy files within the remote (on S3 server-side: no bytes travel), each under the
        retention its destination asks for."""
        if not pairs:
            return
        with self.translated("copying files"):
            self.count(len(pairs))
            if self.is_local:
                import shutil

                for src, dst in pairs:
                    tmp = self._local_tmp(self.path(dst))
                    shutil.copyfile(self.path(src), tmp)
                    os.replace(tmp, self.path(dst))
                return
            for src, dst in pairs:
                args = self._lock_args(dst)
                self.fs.copy(self.path(src), self.path(dst), **args)

    def move_files(self, pairs: list[tuple[str, str]]) -> dict[str, Retention]:
        """Move files within the remote: a rename on a folder; on S3 a server-side copy, then
        the source collected (every version). A source S3 Object Lock holds stays where it
        was (its copy is removed again): those are returned."""
        if not pairs:
            return {}
        if self.is_local:
            with self.translated("moving files"):
                self.count(len(pairs))
                for src, dst in pairs:
                    os.makedirs(posixpath.dirname(self.path(dst)), exist_ok=True)
                    os.replace(self.path(src), self.path(dst))
            return {}
        with self.translated("copying files"):
            self.count(len(pairs))
            self.fs.copy([self.path(s) for s, _ in pairs], [self.path(d) for _, d in pairs])
        held = self.collect([src for src, _ in pairs])
        self.collect([dst for src, dst in pairs if src in held])
        return held

    def drop_empty_folders(self, rel: str) -> None:
        """On a folder remote, remove the empty folders left under ``rel`` (S3 has none)."""
        if not self.is_local:
            return
        top = self.path(rel)
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                continue

    def barrier(self) -> None:
        """For a folder remote: one filesystem sync before indexes and refs point at new data."""
        if self.is_local and os.path.isdir(self.root):
            sync_filesystem(self.root)

    # -- refs ------------------------------------------------------------------------------
    def list_refs(self, inv: Inventory | None = None) -> dict[str, str]:
        with self.translated("listing refs"):
            if inv is None:
                self.count()
                paths = self._find("refs")
            else:
                paths = inv.refs
            if not paths:
                return {}
            self.count(len(paths))
            base = self.path("refs").lstrip("/") + "/"
            return {
                p.lstrip("/")[len(base) :]: data.decode()
                for p, data in self.fs.cat(paths).items()
                if not posixpath.basename(p).startswith(".")
            }

    def stale_tmp(self) -> list[str]:
        """Temp files a killed push left in a folder remote."""
        if not self.is_local:
            return []
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(self.root):
            out.extend(
                os.path.relpath(os.path.join(dirpath, f), self.root)
                for f in files
                if f.startswith(".") and f.endswith(".tmp")
            )
        return out


def store_time(info: dict[str, Any]) -> float:
    """A file's time by the store's own clock (seconds since the epoch): S3's LastModified, a
    folder's mtime. Never this machine's clock."""
    modified = info.get("LastModified")
    if modified is not None:
        return float(modified.timestamp())
    return float(info.get("mtime") or info.get("created") or 0.0)


def _quarantined(inv: Inventory, batch: str, parts: list[str], info: dict[str, Any]) -> None:
    """File one listed path under ``quarantine/<batch>/`` into the inventory."""
    b = inv.quarantine.setdefault(batch, Batch(batch))
    if parts == ["STAMP"]:
        b.stamp = store_time(info)
    elif parts[0] == "objects" and len(parts) == 3:
        oid = f"{PREFIX}{parts[1]}{parts[2]}"
        b.loose.add(oid)
        b.sizes[oid] = int(info.get("size") or 0)
    elif parts[0] == "packs" and len(parts) == 2:
        name, _, kind = parts[1].rpartition(".")
        if kind in ("pack", "idx"):
            b.packs.setdefault(name, set()).add(kind)
