"""The index queries lineage needs, on SQL: which runs read or wrote an object or a path, a
pipeline run's stages, object ids by prefix. :class:`~tether.meta.store.SqlMetaStore` answers
them here; a team server answers the same over HTTP. Runs hidden by ``tether runs delete`` are
left out of every answer.

``data`` is indexed on ``object`` and on ``path``, so each step of a walk is one indexed query
per batch of ids, however many runs the project has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sqlalchemy import Connection

CHUNK = 500  # ids per IN (...) clause
INPUT, OUTPUT = "input", "output"


class DataRow(NamedTuple):
    run_id: str
    role: str  # INPUT | OUTPUT
    path: str
    object: str


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _rows(conn: Connection, condition: Any) -> list[DataRow]:
    from sqlalchemy import select

    from tether.meta import schema as s

    d, r = s.data, s.runs
    stmt = (
        select(d.c.run_id, d.c.role, d.c.path, d.c.object)
        .join(r, r.c.id == d.c.run_id)
        .where(condition, r.c.deleted.is_(False))
        .order_by(r.c.started, d.c.run_id, d.c.path)
    )
    return [DataRow(*row) for row in conn.execute(stmt)]


def data_rows(
    conn: Connection,
    role: str,
    *,
    objects: Iterable[str] = (),
    paths: Iterable[str] = (),
    folder: str | None = None,
) -> list[DataRow]:
    """Rows of runs that logged, in ``role``, any of ``objects``, any of ``paths``, or a path
    inside ``folder``; oldest run first within each kind of match."""
    from tether.meta import schema as s

    d = s.data
    out: list[DataRow] = []
    for chunk in _chunks(objects):
        out += _rows(conn, (d.c.role == role) & d.c.object.in_(chunk))
    for chunk in _chunks(paths):
        out += _rows(conn, (d.c.role == role) & d.c.path.in_(chunk))
    if folder is not None:
        out += _rows(conn, (d.c.role == role) & d.c.path.like(_like(folder) + "/%", escape="\\"))
    return out


def children(conn: Connection, run_ids: Sequence[str]) -> list[tuple[str, str]]:
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
        out += [(parent, child) for parent, child in conn.execute(stmt)]
    return out


def objects_with_prefix(conn: Connection, prefix: str, limit: int = 20) -> list[str]:
    """Distinct object ids that runs logged and that start with ``prefix``."""
    from sqlalchemy import select

    from tether.meta import schema as s

    stmt = (
        select(s.data.c.object)
        .where(s.data.c.object.like(_like(prefix) + "%", escape="\\"))
        .distinct()
        .order_by(s.data.c.object)
        .limit(limit)
    )
    return [oid for (oid,) in conn.execute(stmt)]


def visible_run_ids(conn: Connection) -> list[str]:
    """Every run the index shows (not deleted), oldest first."""
    from sqlalchemy import select

    from tether.meta import schema as s

    r = s.runs
    stmt = select(r.c.id).where(r.c.deleted.is_(False)).order_by(r.c.started, r.c.id)
    return [rid for (rid,) in conn.execute(stmt)]
