"""One team server's state: its database (accounts, projects, verified objects), its object store
and each project's run index. Every HTTP route is one call here, through :mod:`tether.api`.

A project's runs are indexed from records the server holds and verified (:mod:`tether.team.runs`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tether.errors import (
    ConflictError,
    CorruptObjectError,
    MissingProjectError,
    ServerUnavailableError,
    UsageError,
)
from tether.hashing import PREFIX
from tether.meta.engine import reading
from tether.team import githttp
from tether.team import schema as s
from tether.team.accounts import Accounts, Identity, check_name
from tether.team.blobs import Blobs, check_id
from tether.team.githttp import Answer
from tether.team.mirror import Mirrors
from tether.team.oidc import OidcSettings, OidcVerifier
from tether.team.runs import RunVerbs

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tether.meta.store import IndexedRun, SqlMetaStore
    from tether.team.views import Views

PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


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


class Hub(RunVerbs):
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
