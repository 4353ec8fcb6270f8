"""One team server's state: its database (accounts, projects, verified objects), its object store
and each project's run index. Every HTTP route is one call here, through :mod:`tether.api`.

A project's runs are indexed from records the server holds and verified: a run is accepted only
when its record, every object the record links and its amendments are stored, and the record's
id and kind are what the request says. The accepted state of each run is also written to the
store (``<project>/refs/runs/<id>``), so the index stays a cache that ``reindex`` rebuilds.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tether.errors import (
    ConflictError,
    CorruptObjectError,
    FormatError,
    MissingObjectError,
    MissingProjectError,
    MissingRunError,
    PermissionDeniedError,
    ServerUnavailableError,
    UsageError,
)
from tether.hashing import PREFIX
from tether.meta.engine import reading
from tether.team import githttp
from tether.team import schema as s
from tether.team.accounts import ANONYMOUS, Accounts, Identity, check_name
from tether.team.blobs import Blobs, check_id
from tether.team.githttp import Answer
from tether.team.mirror import Mirrors
from tether.team.oidc import OidcSettings, OidcVerifier

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from tether.meta.store import IndexedRun, SqlMetaStore
    from tether.team.views import Views

PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


@dataclass(frozen=True)
class Settings:
    """Where a server keeps things: its database (``index``) and its objects (``store``)."""

    index: str  # a SQLAlchemy URL: sqlite:///… or postgresql+psycopg://…
    store: str  # a folder or an fsspec URL (s3://bucket/prefix)
    max_body: int = 1 << 30  # bytes in one request body (413 beyond)
    open_without_accounts: bool = False  # loopback only: no token needed until `server init`
    oidc: OidcSettings | None = None  # also accept OIDC bearer tokens from this issuer
    mirrors: str = ""  # where projects' git mirrors live ("": beside a SQLite database)
    follow_logs: bool = False  # a repository's own server: its mirrors take its event logs too
    work_tree: str = ""  # a repository's own server: the work tree whose pipeline it shows


@dataclass(frozen=True)
class RunUpload:
    record: str
    amendments: tuple[str, ...] = ()
    tombstone: str | None = None


class Hub:
    def __init__(self, settings: Settings, *, upgrade: bool = False) -> None:
        from tether.team import db

        self.settings = settings
        self.engine: Engine = db.open_engine(settings.index, upgrade=upgrade)
        self.accounts = Accounts(self.engine)
        self.blobs = Blobs(self.engine, settings.store)
        self.oidc = OidcVerifier(settings.oidc) if settings.oidc else None
        self.mirrors = Mirrors(_mirror_folder(settings), follow_logs=settings.follow_logs)
        self._indexes: dict[str, SqlMetaStore] = {}
        self._owners: dict[tuple[str, str], str] = {}  # (project, run) -> who showed it live
        self._projects: set[str] = set()  # seen to exist (a project is never deleted)
        self._lock = threading.Lock()

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self.engine.dispose()

    # -- projects --------------------------------------------------------------------------
    def create_project(self, name: str, *, git: str = "", actor: str) -> None:
        from sqlalchemy.exc import IntegrityError

        if not PROJECT.fullmatch(name):
            raise UsageError(
                f"{name!r} is not a valid project name: lowercase letters, digits, '_' and '-', "
                "starting with a letter or digit, at most 40 characters"
            )
        clash = [p for p in self.projects() if _schema(p["name"]) == _schema(name)]
        if clash:
            raise ConflictError(f"project {clash[0]['name']} already exists")
        self.mirrors.create(name, git)  # first: a URL git cannot clone makes no project
        try:
            with self.engine.begin() as conn:
                conn.execute(s.projects.insert().values(name=name, git=git, created=time.time()))
                self.accounts._audit(conn, actor, "project.create", name, {"git": git})
        except IntegrityError:
            raise ConflictError(f"project {name} already exists") from None
        self.index(name)

    def projects(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        with reading(self.engine) as conn:
            return [
                {"name": p.name, "git": p.git, "created": p.created}
                for p in conn.execute(select(s.projects).order_by(s.projects.c.name))
            ]

    def check_project(self, name: str) -> str:
        from sqlalchemy import select

        if name in self._projects:
            return name
        check_name(name, "project")
        with reading(self.engine) as conn:
            found = conn.execute(select(s.projects.c.name).where(s.projects.c.name == name))
            if found.first() is None:
                raise MissingProjectError(
                    f"there is no project {name} on this server: an admin creates it with "
                    f"`tether server project add {name}`"
                )
        self._projects.add(name)
        return name

    def index(self, project: str) -> SqlMetaStore:
        from tether.meta.store import SqlMetaStore

        with self._lock:
            found = self._indexes.get(project)
            if found is None:
                if self.settings.index.startswith("sqlite"):
                    base = self.settings.index.rsplit(".", 1)[0]
                    found = SqlMetaStore(f"{base}-{project}.db")
                else:
                    found = SqlMetaStore(self.settings.index, schema=_schema(project))
                self._indexes[project] = found
            return found

    def authenticate(self, token: str) -> Identity:
        """A Tether token (``tth_…``), or an OIDC token when an issuer is configured."""
        if token.startswith("tth_") or self.oidc is None:
            return self.accounts.authenticate(token)
        value = self.oidc.claim_value(token)
        return self.accounts.identity_by_oidc(value, self.oidc.settings.claim)

    def git_http(
        self,
        project: str,
        path: str,
        *,
        method: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        user: str,
        role: str,
    ) -> Answer:
        """One request of git's smart HTTP protocol on the project's repository; a push that
        went through is audited."""
        answer = githttp.serve(
            self.mirrors.folder,
            self.mirrors.path(project).name,
            path,
            method=method,
            query=query,
            headers=headers,
            body=body,
            user=user,
            role=role,
        )
        if githttp.is_push(path, query) and method == "POST" and answer.status == 200:
            self.accounts.audit(user, "git.push", project, {"bytes": len(body)})
        return answer

    # -- objects ---------------------------------------------------------------------------
    def put_object(
        self, project: str, oid: str, received: IO[bytes], digest: str, *, by: str
    ) -> bool:
        """Store an uploaded object once its bytes (whose BLAKE3 hex ``digest`` the receiver
        computed as they arrived) hash to ``oid``; False if it was here already."""
        check_id(oid)
        if PREFIX + digest != oid:
            raise CorruptObjectError(
                f"the body does not hash to {oid}: refused, nothing stored (was the upload cut?)"
            )
        size = received.seek(0, os.SEEK_END)
        return self.blobs.put_file(project, oid, received, size, by)

    def put_pack(self, project: str, spooled: IO[bytes], *, by: str) -> list[tuple[str, int]]:
        return self.blobs.put_pack(project, spooled, by)

    # -- runs ------------------------------------------------------------------------------
    def put_run(
        self, project: str, run_id: str, upload: RunUpload, *, by: str
    ) -> tuple[IndexedRun, bool]:
        """Accept a sealed run whose record and objects the server holds (idempotent), and
        whether it is new here. A run belongs to the account that first showed it live or
        uploaded it: another account may add amendments to it, never seal it. The index shows
        that account as the run's user (the record's own ``user`` is only a claim)."""
        from dataclasses import replace

        from tether.meta.store import put_runs_in
        from tether.objects.graph import children
        from tether.runs.record import load_record, to_indexed

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
                row = replace(row, user=owner)
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
            put_runs_in(conn, [row], replace=held is not None or owner_seen)
        if held is None:
            self.views.prebuild(project, record)  # charts of it are ready before anyone asks
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

    def search(
        self,
        project: str,
        where: str | None,
        sort: str | None,
        limit: int | None,
        *,
        include_deleted: bool = False,
        offset: int = 0,
    ) -> list[IndexedRun]:
        return self.index(project).search(
            where, sort, limit, include_deleted=include_deleted, offset=offset
        )

    def get_runs(self, project: str, ids: Sequence[str]) -> list[IndexedRun]:
        return self.index(project).get_runs(ids)

    @property
    def views(self) -> Views:
        """What the web UI reads of a project (``views.py``)."""
        from tether.team.views import Views

        return Views(self)

    def resolve(self, project: str, ref: str) -> list[str]:
        return self.index(project).resolve(ref)

    # -- health ----------------------------------------------------------------------------
    def ready(self) -> dict[str, str]:
        """Check the database and the store answer; 503 naming the one that does not."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with reading(self.engine) as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise ServerUnavailableError(
                f"the server's database does not answer ({type(exc).__name__})"
            ) from exc
        self.blobs.check()
        return {"database": "ok", "store": "ok"}


def _mirror_folder(settings: Settings) -> Path:
    if settings.mirrors:
        return Path(settings.mirrors)
    if settings.index.startswith("sqlite:///"):
        return Path(settings.index[len("sqlite:///") :]).parent / "git"
    if "://" not in settings.store:
        return Path(settings.store).parent / "git"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / (
        "tether/git"
    )


def _schema(project: str) -> str:
    return "tp_" + project.replace("-", "_")


def _load(load: Any, data: bytes, oid: str, kind: str, run_id: str) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = load(data, oid)
    except FormatError as exc:
        raise UsageError(str(exc)) from exc
    key = "id" if kind == "run" else "run"
    if doc.get("kind") != kind or doc.get(key) != run_id:
        raise UsageError(f"object {oid} is not a {kind} record of run {run_id}: refused")
    return doc
