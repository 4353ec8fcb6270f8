"""A remote: objects, packs and refs under one fsspec URL (a folder, ``s3://bucket/prefix``…).

Layout::

    FORMAT                 {"tether":"remote","format":1}
    objects/ab/cdef…       large objects, one file each
    packs/<name>.pack      small objects packed together; <name>.idx lists them
    refs/<name>            the same refs as .tether/refs
    locks/gc               held while a remote gc runs

Every fsspec call goes through this class, so third-party errors become :class:`RemoteError`
here and the number of requests can be counted.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._documents import read_document
from tether._fs import sync_filesystem, unique_suffix
from tether.errors import RemoteError, TetherError
from tether.hashing import PREFIX
from tether.objects.packs import PackIndex

FORMAT = 1


@dataclass
class Inventory:
    """What a remote holds, from one listing of loose objects and one read of all pack indexes."""

    loose: set[str] = field(default_factory=set)
    packs: dict[str, PackIndex] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)  # paths of ref files
    has_format: bool = False
    gc_locked: bool = False

    def ids(self) -> set[str]:
        out = set(self.loose)
        for index in self.packs.values():
            out.update(index.entries)
        return out

    def pack_of(self) -> dict[str, str]:
        return {oid: name for name, index in self.packs.items() for oid in index.entries}


def storage_options(settings: dict[str, Any]) -> dict[str, Any]:
    """Map ``[remote.NAME]`` settings to fsspec options (S3 keys get s3fs's names)."""
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
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url, **(options or {}))
        except (ImportError, ValueError) as exc:
            extra = " (install the s3 extra: pip install 'tether-ml[s3]')" if "s3" in url else ""
            raise RemoteError(f"cannot open remote {name} at {url}: {exc}{extra}") from exc
        protocol = self.fs.protocol
        self.is_local = "file" in (protocol if isinstance(protocol, tuple) else (protocol,))
        self.requests = 0
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------
    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.requests += n

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
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
        """Check the remote's format, or write it on a new remote."""
        if not inv.has_format:
            self.write_bytes("FORMAT", json.dumps({"tether": "remote", "format": 1}).encode())
            return
        self.check_format(inv)

    def check_format(self, inv: Inventory) -> None:
        """Refuse a remote written by a Tether with a format this one does not know."""
        if inv.has_format:
            read_document(self.read_bytes("FORMAT"), "remote", FORMAT, f"remote {self.name}")

    # -- reading ---------------------------------------------------------------------------
    def inventory(self) -> Inventory:
        """One listing of the whole remote, then one batched read of every pack index."""
        inv = Inventory()
        with self._translated("listing its objects"):
            self._count()
            base = self.root.strip("/") + "/"
            idx_paths = []
            for path in self._find(""):
                rel = path.lstrip("/")[len(base) :]
                parts = rel.split("/")
                if parts[0] == "objects" and len(parts) == 3 and not parts[2].startswith("."):
                    inv.loose.add(f"{PREFIX}{parts[1]}{parts[2]}")
                elif parts[0] == "packs" and rel.endswith(".idx"):
                    idx_paths.append(path)
                elif parts[0] == "refs" and not parts[-1].startswith("."):
                    inv.refs.append(path)
                elif rel == "FORMAT":
                    inv.has_format = True
                elif rel == "locks/gc":
                    inv.gc_locked = True
            if idx_paths:
                self._count(len(idx_paths))
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

    def read_bytes(self, rel: str) -> bytes:
        with self._translated(f"reading {rel}"):
            self._count()
            data: bytes = self.fs.cat_file(self.path(rel))
            return data

    def read_ranges(self, rel: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        with self._translated(f"reading {rel}"):
            self._count(len(ranges))
            path = self.path(rel)
            starts = [off for off, _ in ranges]
            ends = [off + n for off, n in ranges]
            return list(self.fs.cat_ranges([path] * len(ranges), starts, ends))

    def download(self, rel: str, local: Path) -> None:
        with self._translated(f"downloading {rel}"):
            self._count()
            self.fs.get_file(self.path(rel), str(local))

    # -- writing ---------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        with self._translated(f"writing {rel}"):
            self._count()
            path = self.path(rel)
            if self.is_local:
                tmp = self._local_tmp(path)
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                self.fs.pipe_file(path, data)

    def upload(self, local: Path, rel: str) -> None:
        with self._translated(f"uploading {rel}"):
            self._count()
            path = self.path(rel)
            if self.is_local:
                import shutil

                tmp = self._local_tmp(path)
                shutil.copyfile(local, tmp)
                os.replace(tmp, path)
            else:
                self.fs.put_file(str(local), path)

    def _local_tmp(self, path: str) -> str:
        parent = posixpath.dirname(path)
        os.makedirs(parent, exist_ok=True)
        return posixpath.join(parent, f".{posixpath.basename(path)}.{unique_suffix(4)}.tmp")

    def delete(self, rels: list[str]) -> None:
        if not rels:
            return
        with self._translated("deleting"):
            self._count(max(1, len(rels) // 1000))
            self.fs.rm([self.path(r) for r in rels])

    def barrier(self) -> None:
        """For a folder remote: one filesystem sync before indexes and refs point at new data."""
        if self.is_local and os.path.isdir(self.root):
            sync_filesystem(self.root)

    # -- refs ------------------------------------------------------------------------------
    def list_refs(self, inv: Inventory | None = None) -> dict[str, str]:
        with self._translated("listing refs"):
            if inv is None:
                self._count()
                paths = self._find("refs")
            else:
                paths = inv.refs
            if not paths:
                return {}
            self._count(len(paths))
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
