"""The SQL index's tables (SQLAlchemy Core). The index is a cache of sealed records: every row can
be rebuilt from objects by ``tether reindex``, so its format may change with a migration at any
time. Object ids are plain strings here: ``meta/`` never touches the object store.

A metric's ``last``/``min``/``max`` are NULL when the value is NaN (SQLite cannot store NaN): the
row's presence says the metric was logged, so a reader tells NaN from "never logged".
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = "0001"  # the Alembic head; bumped with every migration

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),  # UUIDv7 text: sorts by start time
    Column("name", String(200), nullable=False),
    Column("experiment", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # running | finished | failed | killed
    Column("started", Float, nullable=False),  # seconds since the epoch
    Column("ended", Float),
    Column("duration", Float),
    Column("user", String(200), nullable=False, default=""),
    Column("host", String(200), nullable=False, default=""),
    Column("command", Text, nullable=False, default=""),
    Column("exit_code", Integer),
    Column("commit", String(64)),
    Column("branch", String(200)),
    Column("dirty", Boolean),
    Column("parent", String(36)),
    Column("record", String(80)),  # the sealed record's object id; NULL while running
    Column("deleted", Boolean, nullable=False, default=False),  # a tombstone hides it
    Index("ix_runs_started", "started", "id"),
    Index("ix_runs_experiment_started", "experiment", "started"),
    Index("ix_runs_name", "name"),
    Index("ix_runs_record", "record"),
    Index("ix_runs_parent", "parent"),  # a pipeline run's stages
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),  # as logged, stringified (MLflow semantics)
    Column("num", Float),  # the value as a number when it is one, for `params.lr < 0.1`
    # covering indexes: a filter reads run ids from the index alone (2x faster on 100k runs)
    Index("ix_params_key_num", "key", "num", "run_id"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("last", Float),
    Column("min", Float),
    Column("max", Float),
    Column("step", BigInteger, nullable=False, default=0),  # step of the last point
    Column("count", Integer, nullable=False, default=0),
    Index("ix_metrics_key_last", "key", "last", "run_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key", "key"),  # not on value: PostgreSQL cannot index long text
)

data = Table(
    "data",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("role", String(8), primary_key=True),  # input | output
    Column("path", String(1000), primary_key=True),
    Column("object", String(80), nullable=False),
    Index("ix_data_object", "object"),
    Index("ix_data_path", "path"),
)
