"""A team server's runs: :class:`RunVerbs`, which :class:`tether.team.hub.Hub` inherits.

A run is accepted only when its record, every object the record links and its amendments are
stored, and the record's id and kind are what the request says. The accepted state of each run
is written to the store (``<project>/refs/runs/<id>``) before its index row, so the index stays a
cache that the refs rebuild; a running run's owner is kept the same way (``refs/live/<id>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import (
    ConflictError,
    FormatError,
    IndexStoreError,
    MissingObjectError,
    MissingRunError,
    PermissionDeniedError,
    UsageError,
)
from tether.team.accounts import ANONYMOUS
from tether.team.blobs import Blobs, check_id

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from tether.meta.store import IndexedRun, SqlMetaStore
    from tether.team.views import Views

RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


@dataclass(frozen=True)
class RunUpload:
    record: str
    amendments: tuple[str, ...] = ()
    tombstone: str | None = None


class RunVerbs:
    if TYPE_CHECKING:  # the Hub's
        blobs: Blobs
        _owners: dict[tuple[str, str], str]

        def index(self, project: str) -> SqlMetaStore: ...

        @property
        def views(self) -> Views: ...

    def put_run(
        self, project: str, run_id: str, upload: RunUpload, *, by: str
    ) -> tuple[IndexedRun, bool]:
        """Accept a sealed run whose record and objects the server holds (idempotent), and
        whether it is new here. A run belongs to the account that first showed it live or
        uploaded it: another account may add amendments to it, never seal it. The index shows
        that account as the run's user (the record's own ``user`` is only a claim)."""
        from tether.objects.graph import children
        from tether.runs.record import load_record

        linked = [*upload.amendments, *([upload.tombstone] if upload.tombstone else [])]
        for oid in [upload.record, *linked]:
            check_id(oid)
        try:
            data = self.blobs.read_bytes(project, upload.record)
        except MissingObjectError:
            raise ConflictError(
                f"the server does not have this run's record {upload.record[:19]}…: upload it "
                "first (`tether sync` does it in that order)"
            ) from None
        record = _load(load_record, data, upload.record, "run", run_id)
        if missing := self.blobs.missing(project, [*linked, *children(data, upload.record)]):
            raise ConflictError(
                f"run {run_id} links {len(missing)} objects the server does not have "
                f"({', '.join(m[:19] for m in missing[:3])}…): upload them first (`tether sync` "
                "does it in that order)"
            )
        try:
            row, new = self._seal(project, run_id, upload, record, by=by)
        except IndexStoreError as exc:
            from sqlalchemy.exc import IntegrityError

            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # the index holds a row no ref accounts for (a store restored from a backup older
            # than the database): replace it
            row, _ = self._seal(project, run_id, upload, record, by=by, replace=True)
            new = True  # no ref had it: new here
        if new:
            self.views.prebuild(project, record)  # charts of it are ready before anyone asks
        return row, new

    def _seal(
        self,
        project: str,
        run_id: str,
        upload: RunUpload,
        record: dict[str, Any],
        *,
        by: str,
        replace: bool | None = None,
    ) -> tuple[IndexedRun, bool]:
        """Merge the upload into what the server holds of the run under its lock; write its
        ref, then its index row (``replace``: delete a row first; None: if a ref says one may
        exist). The row, and whether the run was new here."""
        import dataclasses

        from tether.meta.store import put_runs_in
        from tether.runs.record import load_record, to_indexed

        with self._run_lock(project, run_id) as conn:  # read, merge, write: one writer per run
            held = self._held(project, run_id)
            owner = held["by"] if held else self._live_owner(project, run_id)
            owner_seen = owner is not None
            if held is None and owner not in (None, by):
                raise PermissionDeniedError(
                    f"run {run_id} is running under account {owner}: only that account can "
                    "seal it (a record under another's run id is refused)"
                )
            if held is not None and held["record"] != upload.record:
                raise ConflictError(
                    f"run {run_id} was sealed here as {held['record'][:19]}…; a sealed run "
                    "never changes (tags and notes are amendments): this record is refused"
                )
            names = sorted({*upload.amendments, *(held or {}).get("amendments", [])})
            tombstone = (held or {}).get("tombstone") or upload.tombstone
            amendments = [
                _load(load_record, self.blobs.read_bytes(project, a), a, "amendment", run_id)
                for a in names
            ]
            if tombstone:
                found = self.blobs.read_bytes(project, tombstone)
                _load(load_record, found, tombstone, "tombstone", run_id)
            uploaded = dict((held or {}).get("uploaded_by") or {})
            for oid in [upload.record, *names, tombstone]:
                if oid:
                    uploaded.setdefault(oid, by)  # who handed each in first: never rewritten
            owner = owner or by
            row = to_indexed(record, upload.record, amendments, deleted=bool(tombstone))
            if owner != ANONYMOUS.user:
                row = dataclasses.replace(row, user=owner)
            ref = {
                "record": upload.record,
                "amendments": names,
                "tombstone": tombstone,
                "by": owner,
                "uploaded_by": uploaded,
            }
            if held != ref:  # a repeated upload rewrites nothing
                self._write_ref(project, run_id, ref)
            # a cache: a crash before it commits is mended here. A run with neither ref has
            # no row (a live view and a seal each write their ref first): nothing to replace
            if replace is None:
                replace = held is not None or owner_seen
            put_runs_in(conn, [row], replace=replace)
        return row, held is None

    @contextmanager
    def _run_lock(self, project: str, run_id: str) -> Iterator[Connection]:
        """Serialise writers of one run across threads and worker processes: a write
        transaction on the project's index that holds the run's lock; the index is written on
        the connection it yields, so the run's row commits with the lock's end."""
        with self.index(project).locked(f"{project}/{run_id}") as conn:
            yield conn

    def _held(self, project: str, run_id: str) -> dict[str, Any] | None:
        try:
            return self.run_state(project, run_id)
        except MissingRunError:
            return None

    def _ref_path(self, project: str, kind: str, run_id: str) -> str:
        if not RUN_ID.fullmatch(run_id):  # it names a file in the store: nothing that escapes
            raise UsageError(f"{run_id[:140]!r} is not a run id")
        return "/".join([self.blobs.root.rstrip("/"), project, "refs", kind, run_id])

    def _write_ref(
        self, project: str, run_id: str, ref: dict[str, Any], kind: str = "runs"
    ) -> None:
        import io

        with self.blobs._translated("write"):
            data = io.BytesIO(json.dumps(ref, sort_keys=True).encode())
            self.blobs._put(data, self._ref_path(project, kind, run_id))

    def _read_ref(self, project: str, run_id: str, kind: str = "runs") -> dict[str, Any] | None:
        with self.blobs._translated("read"):
            try:
                with self.blobs.fs.open(self._ref_path(project, kind, run_id), "rb") as f:
                    doc: dict[str, Any] = json.loads(f.read())
                    return doc
            except FileNotFoundError:
                return None

    def _live_owner(self, project: str, run_id: str) -> str | None:
        """The account a running run was first shown live by (it never changes: cached)."""
        key = (project, run_id)
        if key not in self._owners:
            doc = self._read_ref(project, run_id, "live")
            if doc is None:
                return None
            if len(self._owners) > 100_000:
                self._owners.clear()
            self._owners[key] = str(doc["by"])
        return self._owners[key]

    def put_live(self, project: str, fields: dict[str, Any], *, by: str) -> bool:
        """Show a running run as its client last saw it; False when the server already holds
        it sealed (a late live view never hides the sealed record). The first account to show
        a run owns its id: another account's view, or record, under it is refused."""
        from sqlalchemy import select

        from tether.meta import schema as ms
        from tether.meta.store import put_runs_in
        from tether.teamclient.client import indexed_run

        run_id = str(fields["id"])
        if (owner := self._live_owner(project, run_id)) not in (None, by):
            raise PermissionDeniedError(
                f"run {run_id} is account {owner}'s: another account cannot show it live"
            )
        row = indexed_run({**fields, "record": None, "deleted": False})
        if by != ANONYMOUS.user:
            from dataclasses import replace

            row = replace(row, user=by)
        with self._run_lock(project, run_id) as conn:
            if owner is None:
                held = self._held(project, run_id)
                owner = held["by"] if held else self._live_owner(project, run_id)
                if owner is None:
                    self._write_ref(project, run_id, {"by": by}, "live")
                    owner = by
                if owner != by:
                    raise PermissionDeniedError(
                        f"run {run_id} is account {owner}'s: another account cannot show it live"
                    )
            found = conn.execute(select(ms.runs.c.record).where(ms.runs.c.id == row.id)).first()
            if found is not None and found.record is not None:
                return False  # sealed here: a late live view never hides the sealed record
            put_runs_in(conn, [row])
        return True

    def run_state(self, project: str, run_id: str) -> dict[str, Any]:
        """What the server accepted for a run: its record, amendments and tombstone, the
        account it belongs to and who uploaded each of them."""
        doc = self._read_ref(project, run_id)
        if doc is None:
            raise MissingRunError(
                f"project {project} has no run {run_id}: `tether runs list --server` shows its runs"
            )
        return {
            "record": doc["record"],
            "amendments": doc["amendments"],
            "tombstone": doc["tombstone"],
            "by": doc.get("by"),
            "uploaded_by": doc.get("uploaded_by") or {},
        }

    def record_of(self, project: str, run_id: str) -> str | None:
        """The id of the run's sealed record here (a decision's gate reads it)."""
        return self.run_state(project, run_id).get("record")

    def read_record(self, project: str, oid: str, limit: int = 64 << 20) -> bytes:
        """An object a decision reads (a record, a metric history): never one over ``limit``."""
        size = self.blobs.stat(project, oid).size
        if size > limit:
            raise UsageError(f"{oid[:19]}… is {size} bytes: a decision reads records, not data")
        return b"".join(self.blobs.iter_bytes(project, oid))

    def run_states(self, project: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """:meth:`run_state` of each run the server holds, read concurrently (S3 is slow one
        by one)."""
        from concurrent.futures import ThreadPoolExecutor

        def one(run_id: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return run_id, self.run_state(project, run_id)
            except MissingRunError:
                return run_id, None

        with ThreadPoolExecutor(8) as pool:
            return {r: st for r, st in pool.map(one, dict.fromkeys(run_ids)) if st is not None}


def _load(load: Any, data: bytes, oid: str, kind: str, run_id: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = load(data, oid)
    except FormatError as exc:
        raise UsageError(str(exc)) from exc
    key = "id" if kind == "run" else "run"
    if doc.get("kind") != kind or doc.get(key) != run_id:
        raise UsageError(f"object {oid} is not a {kind} record of run {run_id}: refused")
    return doc
