"""Opening the server's database: SQLite (a laptop, a small team) or PostgreSQL, migrated by
Alembic under its own version table, so it can share a database with a run index.

A fresh database is created on first open; one at an older version is refused until
``tether server migrate`` upgrades it, so a schema never changes under a running team by surprise.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import IndexStoreError
from tether.team.schema import SCHEMA_VERSION, VERSION_TABLE

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


def open_engine(url: str, *, upgrade: bool = False) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith("sqlite"):
        from tether.meta import engine as meta_engine

        engine = create_engine(url, connect_args={"timeout": meta_engine.BUSY_TIMEOUT_S})
        event.listen(engine, "connect", meta_engine._sqlite_connect)
        event.listen(engine, "begin", meta_engine._sqlite_begin)
    else:
        from tether.meta.engine import postgres_engine

        engine = postgres_engine(url, pool_size=10, max_overflow=20)
    try:
        with engine.connect() as conn:
            current = version(conn)
            if current != SCHEMA_VERSION and (current is None or upgrade):
                _migrate(conn)
            elif current != SCHEMA_VERSION:
                raise IndexStoreError(
                    f"the server's database has schema {current}; this Tether needs "
                    f"{SCHEMA_VERSION}: run `tether server migrate` first"
                )
    except SQLAlchemyError as exc:
        engine.dispose()
        raise IndexStoreError(
            f"the server's database cannot be opened ({type(exc).__name__}: "
            f"{getattr(exc, 'orig', None) or exc}); check --index"
        ) from exc
    except IndexStoreError:
        engine.dispose()
        raise
    return engine


def version(conn: Connection) -> str | None:
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    current = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    if current is not None and current > SCHEMA_VERSION:
        raise IndexStoreError(
            f"the server's database has schema {current}, newer than this Tether's "
            f"{SCHEMA_VERSION}: upgrade Tether"
        )
    return current


def _migrate(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    conn.commit()
    conn.execution_options(tether_write=True)
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7468657402)"))
        if version(conn) != SCHEMA_VERSION:
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    conn.execution_options(tether_write=False)
