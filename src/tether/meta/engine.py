"""Opening the index: engines tuned per backend, and Alembic migrations run on first open.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (the index is rebuildable, the objects are the
truth) and a 60 s busy timeout; writers take the lock up front (``BEGIN IMMEDIATE``) so eight
processes logging at once queue instead of failing with "database is locked".
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import IndexStoreError
from tether.meta.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

BUSY_TIMEOUT_S = 60
IDLE_PING_S = 1.0  # a PostgreSQL connection idle longer than this is pinged before it is used


def open_engine(url: str, schema: str | None = None) -> Engine:
    """An engine on ``url``, migrated. ``schema`` (PostgreSQL) keeps the tables in that schema,
    created when missing: the team server gives each project its own."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif schema is not None:
        engine = postgres_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    else:
        engine = postgres_engine(url)
    try:
        with engine.connect() as conn:
            if schema is not None and conn.dialect.name == "postgresql":
                from sqlalchemy import text

                conn.execute(text("SELECT pg_advisory_xact_lock(7468657401)"))  # two workers
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                conn.commit()
            migrate(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise IndexStoreError(
            f"the run index at {_safe(url)} cannot be opened ({type(exc).__name__}: "
            f"{getattr(exc, 'orig', None) or exc}); check the URL, or delete a damaged SQLite "
            "index and run `tether reindex`"
        ) from exc
    return engine


def postgres_engine(url: str, **kw: Any) -> Engine:
    """An engine whose pooled connections are pinged before use only when in doubt
    (``pool_pre_ping`` pings at every checkout: a round trip per query on a busy server): one
    idle over :data:`IDLE_PING_S`, or one PostgreSQL has written to while it sat in the pool
    (ending a connection, by `pg_terminate_backend`, a restart or an idle timeout, sends a
    last message and closes it: the socket turns readable, a check that costs no round trip).
    A connection cut while in use fails its request (503, retried by clients), and SQLAlchemy
    then replaces every connection pooled before the cut."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import DisconnectionError

    engine = create_engine(url, **kw)

    @event.listens_for(engine, "checkin")
    def idle(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None:
            return  # new: just connected
        if time.monotonic() - since > IDLE_PING_S or _readable(dbapi_conn):
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:  # the pool opens another connection and tries again
                raise DisconnectionError(f"a pooled connection was cut: {exc}") from exc

    return engine


def _readable(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket has something to read: the server wrote (its
    goodbye) or closed it. A connection at rest receives nothing else (Tether never LISTENs)."""
    try:
        poller = select.poll()
        poller.register(dbapi_conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return True  # no socket to look at: let the ping decide


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads. On PostgreSQL it runs in autocommit: no BEGIN and ROLLBACK
    around each read, and the same view as a transaction at the default READ COMMITTED level
    (each statement its own snapshot)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin event emits BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("tether_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def migrate(conn: Connection) -> None:
    """Bring the schema to :data:`schema.SCHEMA_VERSION`; a no-op (one query) when it is.

    Two processes opening a new index at once are serialised: SQLite by the write lock, PostgreSQL
    by an advisory lock, and the version is read again once the lock is held."""
    from sqlalchemy import text

    if _current(conn) == SCHEMA_VERSION:
        return
    conn.commit()
    conn.execution_options(tether_write=True)
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7468657400)"))
        if _current(conn) != SCHEMA_VERSION:
            _upgrade(conn)
    conn.execution_options(tether_write=False)


def _current(conn: Connection) -> str | None:
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return None
    current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if current is not None and current > SCHEMA_VERSION:
        raise IndexStoreError(
            f"the run index has schema {current}, newer than this Tether's {SCHEMA_VERSION}: "
            "upgrade Tether (or point it at another index)"
        )
    return current


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
