"""The index behind one interface: :class:`MetaStore`. :class:`SqlMetaStore` implements it on
SQLite (WAL, the default) or PostgreSQL; a later HTTP client implements the same methods.

Values cross the interface as :class:`IndexedRun`: plain data, no SQLAlchemy, so a server can
serialise them. Writes are batched: one transaction for any number of runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tether.errors import IndexStoreError, RunError
from tether.meta import lineage
from tether.meta.lineage import DataRow

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

CHUNK = 500  # ids per IN (...) clause


@dataclass(frozen=True)
class MetricSummary:
    last: float  # NaN allowed
    min: float
    max: float
    step: int = 0
    count: int = 1


@dataclass(frozen=True)
class IndexedRun:
    """What the index knows of one run: its row and its params, metrics, tags and data."""

    id: str
    name: str
    experiment: str
    status: str
    started: float
    ended: float | None = None
    user: str = ""
    host: str = ""
    command: str = ""
    exit_code: int | None = None
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    parent: str | None = None
    record: str | None = None
    deleted: bool = False
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


class MetaStore(Protocol):
    """The index's interface. Every method is a whole operation (one transaction)."""

    def put_runs(
        self, runs: Sequence[IndexedRun], *, replace: bool = True, clear: bool = False
    ) -> None: ...
    def get_runs(self, ids: Sequence[str]) -> list[IndexedRun]: ...
    def search(
        self,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        *,
        include_deleted: bool = False,
        offset: int = 0,
    ) -> list[IndexedRun]: ...
    def resolve(self, ref: str) -> list[str]: ...
    def set_deleted(self, run_ids: Sequence[str], deleted: bool = True) -> None: ...
    def indexed_records(self) -> dict[str, str | None]: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...
    # what lineage asks (see :mod:`tether.meta.lineage`)
    def data_rows(
        self,
        role: str,
        *,
        objects: Iterable[str] = (),
        paths: Iterable[str] = (),
        folder: str | None = None,
    ) -> list[DataRow]: ...
    def children(self, run_ids: Sequence[str]) -> list[tuple[str, str]]: ...
    def objects_with_prefix(self, prefix: str, limit: int = 20) -> list[str]: ...
    def visible_run_ids(self) -> list[str]: ...


def _num(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _db_float(value: float) -> float | None:
    return None if math.isnan(value) else value


class SqlMetaStore:
    """:class:`MetaStore` over SQLAlchemy Core; migrations by Alembic on first open."""

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        from tether.meta import engine as _engine

        self.url = url
        self.engine: Engine = _engine.open_engine(url, schema)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect().execution_options(tether_write=True) as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise IndexStoreError(
                f"the run index could not be written ({_cause(exc)}); "
                "if it is damaged, `tether reindex` rebuilds it from the sealed runs"
            ) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        from sqlalchemy.exc import SQLAlchemyError

        from tether.meta.engine import reading

        try:
            with reading(self.engine) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise IndexStoreError(
                f"the run index could not be read ({_cause(exc)}); "
                "`tether reindex` rebuilds it from the sealed runs"
            ) from exc

    # -- writes ----------------------------------------------------------------------------
    def put_runs(
        self, runs: Sequence[IndexedRun], *, replace: bool = True, clear: bool = False
    ) -> None:
        """Insert runs, replacing any the index has; ``replace=False`` for runs known to be new
        (a run being started), which skips the deletes; ``clear=True`` empties the index first,
        in the same transaction (a rebuild)."""
        from tether.meta import schema as s

        if not runs and not clear:
            return
        with self._write() as conn:
            if clear:
                for table in (s.params, s.metrics, s.tags, s.data, s.runs):
                    conn.execute(table.delete())
                replace = False
            put_runs_in(conn, runs, replace=replace)

    @contextmanager
    def locked(self, key: str) -> Iterator[Connection]:
        """One write transaction that holds ``key``'s lock until it ends: writers of one key
        take turns across threads and processes (PostgreSQL: an advisory lock on the key;
        SQLite: the database's write lock, taken at BEGIN IMMEDIATE). Write the index through
        :func:`put_runs_in` on the connection it yields."""
        import zlib

        from sqlalchemy import text

        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                lock = (0x7468 << 32) | zlib.crc32(key.encode())
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            yield conn

    def set_deleted(self, run_ids: Sequence[str], deleted: bool = True) -> None:
        from tether.meta import schema as s

        with self._write() as conn:
            for start in range(0, len(run_ids), CHUNK):
                chunk = list(run_ids[start : start + CHUNK])
                conn.execute(s.runs.update().where(s.runs.c.id.in_(chunk)).values(deleted=deleted))

    def clear(self) -> None:
        from tether.meta import schema as s

        with self._write() as conn:
            for table in (s.params, s.metrics, s.tags, s.data, s.runs):
                conn.execute(table.delete())

    # -- reads -----------------------------------------------------------------------------
    def get_runs(self, ids: Sequence[str]) -> list[IndexedRun]:
        from sqlalchemy import select

        from tether.meta import schema as s

        with self._read() as conn:
            rows: list[Any] = []
            for start in range(0, len(ids), CHUNK):
                chunk = list(ids[start : start + CHUNK])
                rows += conn.execute(select(s.runs).where(s.runs.c.id.in_(chunk))).mappings().all()
            found = _load(conn, rows)
        order = {rid: i for i, rid in enumerate(ids)}
        return sorted(found, key=lambda r: order.get(r.id, 0))

    def search(
        self,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        *,
        include_deleted: bool = False,
        offset: int = 0,
    ) -> list[IndexedRun]:
        from tether.meta.query import build_search

        stmt = build_search(where, sort, limit, include_deleted=include_deleted)
        if offset:
            stmt = stmt.offset(offset)
        with self._read() as conn:
            return _load(conn, conn.execute(stmt).mappings().all())

    def resolve(self, ref: str) -> list[str]:
        """Run ids matching ``ref``: a full id, a unique id prefix, or a run name."""
        from sqlalchemy import or_, select

        from tether.meta import schema as s

        if not ref:
            raise RunError("give a run id, an id prefix or a run name")
        like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = select(s.runs.c.id, s.runs.c.name).where(
            or_(s.runs.c.id.like(like, escape="\\"), s.runs.c.name == ref)
        )
        with self._read() as conn:
            rows = conn.execute(stmt.limit(50)).all()
        exact = [rid for rid, _name in rows if rid == ref]
        return exact or sorted({rid for rid, _name in rows})

    # -- lineage ---------------------------------------------------------------------------
    def data_rows(
        self,
        role: str,
        *,
        objects: Iterable[str] = (),
        paths: Iterable[str] = (),
        folder: str | None = None,
    ) -> list[DataRow]:
        with self._read() as conn:
            return lineage.data_rows(conn, role, objects=objects, paths=paths, folder=folder)

    def children(self, run_ids: Sequence[str]) -> list[tuple[str, str]]:
        with self._read() as conn:
            return lineage.children(conn, run_ids)

    def objects_with_prefix(self, prefix: str, limit: int = 20) -> list[str]:
        with self._read() as conn:
            return lineage.objects_with_prefix(conn, prefix, limit)

    def visible_run_ids(self) -> list[str]:
        with self._read() as conn:
            return lineage.visible_run_ids(conn)

    def indexed_records(self) -> dict[str, str | None]:
        """Run id -> the sealed record id it was indexed from (None while running)."""
        from sqlalchemy import select

        from tether.meta import schema as s

        with self._read() as conn:
            return dict(conn.execute(select(s.runs.c.id, s.runs.c.record)).all())


def put_runs_in(conn: Connection, runs: Sequence[IndexedRun], *, replace: bool = True) -> None:
    """Write ``runs`` on an open write transaction, replacing what the index has of them.
    A run's params, metrics, tags and data rows are only ever written with its row: where no
    row was deleted (a run new here, the usual case) there is nothing else to delete."""
    from sqlalchemy import delete

    from tether.meta import schema as s

    for start in range(0, len(runs), CHUNK):
        batch = runs[start : start + CHUNK]
        ids = [r.id for r in batch]
        if replace:
            stmt = delete(s.runs).where(s.runs.c.id.in_(ids)).returning(s.runs.c.id)
            if had := list(conn.execute(stmt).scalars()):
                for table in (s.params, s.metrics, s.tags, s.data):
                    conn.execute(table.delete().where(table.c.run_id.in_(had)))
        _insert(conn, batch)


def _insert(conn: Connection, batch: Iterable[IndexedRun]) -> None:
    from tether.meta import schema as s

    runs, params, metrics, tags, data = [], [], [], [], []
    for r in batch:
        runs.append(
            {
                "id": r.id,
                "name": r.name,
                "experiment": r.experiment,
                "status": r.status,
                "started": r.started,
                "ended": r.ended,
                "duration": r.duration,
                "user": r.user,
                "host": r.host,
                "command": r.command,
                "exit_code": r.exit_code,
                "commit": r.commit,
                "branch": r.branch,
                "dirty": r.dirty,
                "parent": r.parent,
                "record": r.record,
                "deleted": r.deleted,
            }
        )
        params += [
            {"run_id": r.id, "key": k, "value": v, "num": _num(v)} for k, v in r.params.items()
        ]
        tags += [{"run_id": r.id, "key": k, "value": v} for k, v in r.tags.items()]
        for role, paths in (("input", r.inputs), ("output", r.outputs)):
            data += [
                {"run_id": r.id, "role": role, "path": p, "object": o} for p, o in paths.items()
            ]
        for k, m in r.metrics.items():
            metrics.append(
                {
                    "run_id": r.id,
                    "key": k,
                    "last": _db_float(m.last),
                    "min": _db_float(m.min),
                    "max": _db_float(m.max),
                    "step": m.step,
                    "count": m.count,
                }
            )
    for table, rows in ((s.runs, runs), (s.params, params), (s.metrics, metrics), (s.tags, tags)):
        if rows:
            conn.execute(table.insert(), rows)
    if data:
        conn.execute(s.data.insert(), data)


def _load(conn: Connection, rows: Sequence[Any]) -> list[IndexedRun]:
    """Rows of ``runs`` -> IndexedRun, with their children in one query per table."""
    from sqlalchemy import select

    from tether.meta import schema as s

    ids = [row["id"] for row in rows]
    kids: dict[str, dict[str, Any]] = {
        rid: {"params": {}, "metrics": {}, "tags": {}, "inputs": {}, "outputs": {}} for rid in ids
    }
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for rid, k, v in conn.execute(
            select(s.params.c.run_id, s.params.c.key, s.params.c.value).where(
                s.params.c.run_id.in_(chunk)
            )
        ):
            kids[rid]["params"][k] = v
        for rid, k, v in conn.execute(
            select(s.tags.c.run_id, s.tags.c.key, s.tags.c.value).where(s.tags.c.run_id.in_(chunk))
        ):
            kids[rid]["tags"][k] = v
        for m in conn.execute(select(s.metrics).where(s.metrics.c.run_id.in_(chunk))).mappings():
            kids[m["run_id"]]["metrics"][m["key"]] = MetricSummary(
                _py_float(m["last"]),
                _py_float(m["min"]),
                _py_float(m["max"]),
                m["step"],
                m["count"],
            )
        for d in conn.execute(select(s.data).where(s.data.c.run_id.in_(chunk))).mappings():
            kids[d["run_id"]]["inputs" if d["role"] == "input" else "outputs"][d["path"]] = d[
                "object"
            ]
    return [IndexedRun(**{f: row[f] for f in _ROW_FIELDS}, **kids[row["id"]]) for row in rows]


_ROW_FIELDS = [
    "id",
    "name",
    "experiment",
    "status",
    "started",
    "ended",
    "user",
    "host",
    "command",
    "exit_code",
    "commit",
    "branch",
    "dirty",
    "parent",
    "record",
    "deleted",
]


def _py_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _cause(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"
