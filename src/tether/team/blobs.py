"""The server's objects: bytes in a folder or an S3 bucket (fsspec), and a table that says which
arrived and were verified.

An upload is hashed as it arrives and stored only when its BLAKE3 matches the id it claims; the
row is written after the store confirmed the write, so ``missing`` never counts a client's claim
as stored, and an upload cut halfway leaves nothing behind that counts. Small objects travel as
a *pack*: one request, one file in the store, one row per object with its offset.

Layout under the store URL::

    <project>/objects/ab/cdef…     one object
    <project>/packs/<blake3>.pack  small objects, back to back (offsets in the table)
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from tether.errors import (
    CorruptObjectError,
    MissingObjectError,
    ServerUnavailableError,
    UsageError,
)
from tether.hashing import PREFIX, is_object_id
from tether.meta.engine import reading
from tether.team import schema as s
from tether.teamclient.packs import PACK_MAGIC

if TYPE_CHECKING:
    from sqlalchemy import Engine

CHUNK = 1 << 20
SPOOL = 8 << 20  # an upload up to this size is received in memory
QUARANTINE = "quarantine"
MAX_PACK_INDEX = 16 << 20


@dataclass(frozen=True)
class Stored:
    id: str
    size: int
    pack: str | None
    offset: int | None


def check_id(oid: str) -> str:
    if not is_object_id(oid):
        raise UsageError(f"{oid[:100]!r} is not an object id (blake3: and 64 hex digits)")
    return oid


class Blobs:
    def __init__(self, engine: Engine, store_url: str) -> None:
        import fsspec

        self.engine = engine
        self.url = store_url
        self.fs, self.root = fsspec.core.url_to_fs(store_url)
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        self.is_local = "file" in protocols
        self.is_s3 = "s3" in protocols or "s3a" in protocols

    def _path(self, project: str, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), project, *parts])

    def object_path(self, project: str, oid: str) -> str:
        hexid = oid[len(PREFIX) :]
        return self._path(project, "objects", hexid[:2], hexid[2:])

    # -- what is here ----------------------------------------------------------------------
    def missing(self, project: str, ids: list[str]) -> list[str]:
        """Which of ``ids`` the server has not verified and stored, in the order asked."""
        from sqlalchemy import select

        for oid in ids:
            check_id(oid)
        have: set[str] = set()
        with reading(self.engine) as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                have.update(
                    conn.execute(
                        select(s.objects.c.id).where(
                            (s.objects.c.project == project) & s.objects.c.id.in_(chunk)
                        )
                    ).scalars()
                )
        return [oid for oid in ids if oid not in have]

    def stat(self, project: str, oid: str) -> Stored:
        from sqlalchemy import select

        with reading(self.engine) as conn:
            row = conn.execute(
                select(s.objects).where((s.objects.c.project == project) & (s.objects.c.id == oid))
            ).first()
        if row is None:
            raise MissingObjectError([oid], hint="the server does not have it: push it first")
        return Stored(row.id, row.size, row.pack, row.offset)

    def count(self, project: str) -> tuple[int, int]:
        """(objects, bytes) stored for ``project``."""
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            n, total = conn.execute(
                select(func.count(), func.coalesce(func.sum(s.objects.c.size), 0)).where(
                    s.objects.c.project == project
                )
            ).one()
        return int(n), int(total)

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, project: str, oid: str) -> bytes:
        return b"".join(self.iter_bytes(project, oid))

    def iter_bytes(self, project: str, oid: str) -> Iterator[bytes]:
        found = self.stat(project, oid)
        with self._translated("read"):
            if found.pack is None:
                with self.fs.open(self.object_path(project, oid), "rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk
            else:
                assert found.offset is not None
                path = self._path(project, "packs", found.pack[len(PREFIX) :] + ".pack")
                yield self.fs.cat_file(path, start=found.offset, end=found.offset + found.size)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def incoming(self, project: str, size_hint: int | None) -> Iterator[IO[bytes]]:
        """Where an upload is received: memory for a small one; for a big one into a folder
        store, a file beside the objects, so storing it is a rename, not a second copy."""
        if not (self.is_local and size_hint is not None and size_hint > SPOOL):
            with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
                yield spool
            return
        folder = self._path(project, "tmp")
        os.makedirs(folder, exist_ok=True)
        f = tempfile.NamedTemporaryFile(dir=folder, prefix=".in-", delete=False)  # noqa: SIM115
        try:
            yield f
        finally:
            f.close()
            if os.path.exists(f.name):
                os.unlink(f.name)

    def put_file(self, project: str, oid: str, spooled: IO[bytes], size: int, by: str) -> bool:
        """Store an upload already hashed and found to match ``oid``; False if it was here."""
        if not self.missing(project, [oid]):
            return False
        name = getattr(spooled, "name", None)
        with self._translated("write"):
            if isinstance(name, str) and os.path.dirname(name) == self._path(project, "tmp"):
                spooled.flush()
                os.fsync(spooled.fileno())
                os.chmod(name, 0o444)
                final = self.object_path(project, oid)
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(name, final)  # received beside the objects: no second copy
                _fsync_folder(os.path.dirname(final))
            else:
                spooled.seek(0)
                self._put(spooled, self.object_path(project, oid))
        self._record(project, [(oid, size, None, None)], by)
        return True

    def put_pack(self, project: str, spooled: IO[bytes], by: str) -> list[tuple[str, int]]:
        """Verify every object of a pack and store the new ones as one pack; their ids and
        sizes."""
        spooled.seek(0)
        head = spooled.read(16)
        if len(head) != 16 or head[:8] != PACK_MAGIC:
            raise UsageError("the body is not a Tether pack (it starts with TTHPACK1)")
        (index_len,) = struct.unpack(">Q", head[8:])
        if index_len > MAX_PACK_INDEX:
            raise UsageError("the pack's index is larger than 16 MiB: send smaller packs")
        try:
            index = json.loads(spooled.read(index_len))
            items = [(check_id(str(oid)), int(size)) for oid, size in index]
        except (ValueError, TypeError) as exc:
            raise UsageError(f"the pack's index is not a list of [id, size] ({exc})") from exc
        if any(size < 0 for _, size in items):
            raise UsageError("the pack's index gives a negative size")
        start = spooled.tell()
        body = spooled.seek(0, os.SEEK_END) - start
        spooled.seek(start)
        if sum(size for _, size in items) != body:  # checked before a byte is read by size
            raise UsageError(
                f"the pack's index lists {sum(size for _, size in items)} bytes of objects and "
                f"the pack holds {body}: refused"
            )
        wanted = set(self.missing(project, [oid for oid, _ in items]))
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as out:
            rows, pack_id = _copy_verified(spooled, items, wanted, out)
            if not rows:
                return []
            out.seek(0)
            with self._translated("write"):
                self._put(out, self._path(project, "packs", pack_id[len(PREFIX) :] + ".pack"))
        self._record(project, [(oid, size, pack_id, off) for oid, size, off in rows], by)
        return [(oid, size) for oid, size, _ in rows]

    # -- straight to S3 ----------------------------------------------------------------------
    def presign_upload(self, project: str, oid: str, *, expires: int = 3600) -> dict[str, str]:
        """A URL the client PUTs ``oid``'s bytes to, straight to S3, under quarantine: nothing
        there counts as stored until :meth:`commit_upload` has hashed it."""
        import secrets

        if not self.is_s3:
            raise UsageError(
                "this server's store is not S3: send objects through the server (PUT objects/ID)"
            )
        check_id(oid)
        upload = f"{secrets.token_hex(16)}.{oid[len(PREFIX) :]}"
        with self._translated("sign an upload"):
            url = self.fs.url(
                self._path(project, QUARANTINE, upload), expires=expires, client_method="put_object"
            )
        return {"upload": upload, "url": str(url), "method": "PUT"}

    def commit_upload(self, project: str, upload: str, by: str) -> tuple[str, bool]:
        """Hash what a client put under quarantine; when it is the object it claimed, move it
        into place and record it. (id, stored now); the quarantined copy goes either way."""
        from blake3 import blake3

        token, _, hexid = upload.partition(".")
        oid = check_id(PREFIX + hexid)
        if len(token) != 32 or not all(c in "0123456789abcdef" for c in token):
            raise UsageError(f"{upload[:80]!r} is not an upload this server handed out")
        held = self._path(project, QUARANTINE, upload)
        with self._translated("read the upload"):
            try:
                f = self.fs.open(held, "rb")
            except FileNotFoundError:
                raise UsageError(
                    f"upload {upload[:40]}… is not there: PUT the bytes to its URL first"
                ) from None
            hasher, size = blake3(max_threads=blake3.AUTO), 0
            with f:
                while chunk := f.read(8 * CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
        try:
            if PREFIX + hasher.hexdigest() != oid:
                raise CorruptObjectError(
                    f"the bytes uploaded do not hash to {oid}: refused, nothing stored"
                )
            if not self.missing(project, [oid]):
                return oid, False
            with self._translated("move the upload into place"):
                self.fs.copy(held, self.object_path(project, oid))
            self._record(project, [(oid, size, None, None)], by)
            return oid, True
        finally:
            with self._translated("drop the upload"):
                self.fs.rm(held)

    def _put(self, source: IO[bytes], path: str) -> None:
        if self.is_local:
            # a temp file in the same folder, renamed: a reader never sees half an object
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    while chunk := source.read(CHUNK):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
            return
        with self.fs.open(path, "wb") as f:  # S3: a single PUT, or a multipart upload
            while chunk := source.read(CHUNK):
                f.write(chunk)

    def _record(
        self, project: str, rows: list[tuple[str, int, str | None, int | None]], by: str
    ) -> None:
        from sqlalchemy.exc import IntegrityError

        now = time.time()
        values = [
            {
                "project": project,
                "id": o,
                "size": n,
                "pack": p,
                "offset": off,
                "stored": now,
                "by": by,
            }
            for o, n, p, off in rows
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(s.objects.insert(), values)
            return
        except IntegrityError:
            pass  # another upload of some of these won the race: record the rest one by one
        for value in values:
            try:
                with self.engine.begin() as conn:
                    conn.execute(s.objects.insert(), [value])
            except IntegrityError:
                continue  # stored by the other upload: the same bytes, by their id

    # -- health ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`ServerUnavailableError` unless the store answers."""
        with self._translated("be reached"):
            if self.is_local:
                os.makedirs(self.root, exist_ok=True)
                os.listdir(self.root)
            else:
                # the bucket (an empty prefix is no folder on S3), without a cached answer
                self.fs.ls(self.root.split("/", 1)[0], detail=False, refresh=True)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Third-party storage errors become ours: a lost file is missing, anything else 503."""
        try:
            yield
        except (UsageError, MissingObjectError):
            raise
        except FileNotFoundError as exc:
            raise MissingObjectError(
                [], hint=f"the server's store lost a file it recorded ({exc}): run fsck"
            ) from exc
        except Exception as exc:
            if not isinstance(exc, (OSError, TimeoutError)) and not type(exc).__module__.startswith(
                ("botocore", "aiobotocore", "s3fs", "aiohttp")
            ):
                raise
            raise ServerUnavailableError(
                f"the server's object store at {self.url} could not {what} "
                f"({type(exc).__name__}: {exc}); nothing was recorded as stored: try again"
            ) from exc


def _copy_verified(
    source: IO[bytes], items: list[tuple[str, int]], wanted: set[str], out: IO[bytes]
) -> tuple[list[tuple[str, int, int]], str]:
    """Check each object of a pack against its id and copy the wanted ones to ``out``: their
    (id, size, offset) and the new pack's id."""
    from blake3 import blake3

    rows: list[tuple[str, int, int]] = []
    hasher = blake3()
    for oid, size in items:
        data = source.read(size)
        if len(data) != size:
            raise UsageError(f"the pack ends inside {oid}: it was cut short")
        if PREFIX + blake3(data).hexdigest() != oid:
            raise CorruptObjectError(f"{oid} in the pack does not hash to its id: refused")
        if oid in wanted:
            rows.append((oid, size, out.tell()))
            out.write(data)
            hasher.update(data)
            wanted.discard(oid)
    if source.read(1):
        raise UsageError("the pack has bytes after its last object")
    return rows, PREFIX + hasher.hexdigest()


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
