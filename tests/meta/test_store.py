"""The index on real SQLite and real PostgreSQL: migrations, round trips, NaN, prefixes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tether.errors import IndexStoreError
from tether.meta.store import IndexedRun, MetricSummary, SqlMetaStore


def sample(i: int, **over: object) -> IndexedRun:
    base = {
        "id": f"0190aaaa-{i:04d}-7000-8000-000000000000",
        "name": f"run-{i}",
        "experiment": "exp",
        "status": "finished",
        "started": 1000.0 + i,
        "ended": 1010.0 + i,
        "params": {"lr": str(0.1 * i), "opt": "adam", "big": "x" * 100_000},
        "metrics": {
            "acc": MetricSummary(0.5 + i / 100, 0.1, 0.9, 3, 4),
            "loss": MetricSummary(math.nan, 0.2, 0.3, 1, 2),
        },
        "tags": {"team": "nlp"},
        "inputs": {"data/train": "blake3:" + "a" * 64},
    }
    base.update(over)
    return IndexedRun(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlMetaStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = SqlMetaStore(url)
    yield s
    s.close()


def test_round_trip_keeps_every_field_nan_and_huge_values(store: SqlMetaStore) -> None:
    runs = [sample(i) for i in range(3)]
    store.put_runs(runs)
    got = store.get_runs([r.id for r in runs])
    assert [g.id for g in got] == [r.id for r in runs]
    for want, have in zip(runs, got, strict=True):
        assert have.params == want.params and have.tags == want.tags
        assert have.inputs == want.inputs
        assert have.metrics["acc"] == want.metrics["acc"]
        assert math.isnan(have.metrics["loss"].last)  # NaN comes back as NaN, not "missing"
        assert have.duration == pytest.approx(10.0)


def test_put_again_replaces_a_run_and_its_children(store: SqlMetaStore) -> None:
    store.put_runs([sample(1)])
    store.put_runs([sample(1, status="killed", params={"lr": "9"}, metrics={})])
    (run,) = store.get_runs([sample(1).id])
    assert run.status == "killed" and run.params == {"lr": "9"} and run.metrics == {}


def test_resolve_by_prefix_name_and_ambiguity(store: SqlMetaStore) -> None:
    store.put_runs([sample(1), sample(2)])
    assert store.resolve("run-2") == [sample(2).id]
    assert store.resolve(sample(1).id[:16]) == [sample(1).id]
    assert len(store.resolve("0190aaaa")) == 2
    assert store.resolve("zzz") == []
    assert store.resolve("0190aaaa-000_") == []  # LIKE wildcards in user input are literal


def test_search_and_soft_delete(store: SqlMetaStore) -> None:
    store.put_runs([sample(i) for i in range(5)])
    found = store.search("metrics.acc > 0.515 and tags.team = 'nlp'", "metrics.acc desc", 10)
    assert [r.name for r in found] == ["run-4", "run-3", "run-2"]
    store.set_deleted([sample(4).id])
    assert [r.name for r in store.search("metrics.acc > 0.515")][:1] != ["run-4"]
    assert sample(4).id in {r.id for r in store.search(include_deleted=True)}


def test_migrations_match_the_schema(store: SqlMetaStore) -> None:
    """Alembic's migrations build exactly the tables schema.py declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tether.meta.schema import metadata

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'index.db'}"
    SqlMetaStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(IndexStoreError, match="newer than this Tether"):
        SqlMetaStore(url)


def test_a_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexStoreError, match="tether reindex"):
        SqlMetaStore(f"sqlite:///{path}")
