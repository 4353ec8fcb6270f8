"""The index queries lineage needs: which runs read or wrote an object or a path, a pipeline run's
stages. Plain functions over the SQL index's tables (SQLAlchemy Core); runs hidden by
``tether runs delete`` are left out of every answer.

``data`` is indexed on ``object`` and on ``path``, so each step of a walk is one indexed query
per batch of ids, however many runs the project has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from tether.errors import IndexStoreError, UsageError
from tether.runs.index import open_index
from tether.workspace.repo import Workspace

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

CHUNK = 500  # ids per IN (...) clause
INPUT, OUTPUT = "input", "output"


class DataRow(NamedTuple):
    run_id: str
    role: str  # INPUT | OUTPUT
    path: str
    object: str


def index_engine(ws: Workspace) -> Engine:
    """The SQL engine behind the workspace's run index."""
    from tether.meta.store import SqlMetaStore

    index = open_index(ws)
    if not isinstance(index, SqlMetaStore):
        raise UsageError("lineage needs a SQL run index (SQLite or PostgreSQL, `index.url`)")
    return index.engine


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise IndexStoreError(
            f"the run index could not be read ({type(exc).__name__}); "
            "`tether reindex` rebuilds it from the sealed runs"
        ) from exc


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _data_rows(engine: Engine, condition: Any) -> list[DataRow]:
    from sqlalchemy import select

    from tether.meta import schema as s

    d, r = s.data, s.runs
    stmt = (
        select(d.c.run_id, d.c.role, d.c.path, d.c.object)
        .join(r, r.c.id == d.c.run_id)
        .where(condition, r.c.deleted.is_(False))
        .order_by(r.c.started, d.c.run_id, d.c.path)
    )
    with _reading(engine) as conn:
        return [DataRow(*row) for row in conn.execute(stmt)]


def runs_with_objects(engine: Engine, role: str, ids: Iterable[str]) -> list[DataRow]:
    """Rows of runs that logged any of ``ids`` as an input (or output), oldest run first."""
    from tether.meta import schema as s

    out: list[DataRow] = []
    for chunk in _chunks(ids):
        out += _data_rows(engine, (s.data.c.role == role) & s.data.c.object.in_(chunk))
    return out


def runs_with_paths(engine: Engine, role: str, paths: Iterable[str]) -> list[DataRow]:
    """Rows of runs that logged any of ``paths`` (whatever its content) in ``role``."""
    from tether.meta import schema as s

    out: list[DataRow] = []
    for chunk in _chunks(paths):
        out += _data_rows(engine, (s.data.c.role == role) & s.data.c.path.in_(chunk))
    return out


def runs_under_folder(engine: Engine, role: str, folder: str) -> list[DataRow]:
    """Rows of runs that logged a path inside ``folder`` (``folder/...``) in ``role``."""
    from tether.meta import schema as s

    like = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
    return _data_rows(engine, (s.data.c.role == role) & s.data.c.path.like(like, escape="\\"))


def children(engine: Engine, run_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(parent, child) for every run whose parent is one of ``run_ids``, oldest child first."""
    from sqlalchemy import select

    from tether.meta import schema as s

    r = s.runs
    out: list[tuple[str, str]] = []
    for chunk in _chunks(run_ids):
        stmt = (
            select(r.c.parent, r.c.id)
            .where(r.c.parent.in_(chunk), r.c.deleted.is_(False))
            .order_by(r.c.started, r.c.id)
        )
        with _reading(engine) as conn:
            out += [(parent, child) for parent, child in conn.execute(stmt)]
    return out


def objects_with_prefix(engine: Engine, prefix: str, limit: int = 20) -> list[str]:
    """Distinct object ids that runs logged and that start with ``prefix``."""
    from sqlalchemy import select

    from tether.meta import schema as s

    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (
        select(s.data.c.object)
        .where(s.data.c.object.like(like, escape="\\"))
        .distinct()
        .order_by(s.data.c.object)
        .limit(limit)
    )
    with _reading(engine) as conn:
        return [oid for (oid,) in conn.execute(stmt)]


def run_ids(engine: Engine) -> list[str]:
    """Every run the index shows (not deleted), oldest first."""
    from sqlalchemy import select

    from tether.meta import schema as s

    r = s.runs
    stmt = select(r.c.id).where(r.c.deleted.is_(False)).order_by(r.c.started, r.c.id)
    with _reading(engine) as conn:
        return [rid for (rid,) in conn.execute(stmt)]


def ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``: the folders a path sits in."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
