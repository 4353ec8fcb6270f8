"""The first index schema: runs and their params, metrics, tags and data.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("experiment", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float),
        sa.Column("duration", sa.Float),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("commit", sa.String(64)),
        sa.Column("branch", sa.String(200)),
        sa.Column("dirty", sa.Boolean),
        sa.Column("parent", sa.String(36)),
        sa.Column("record", sa.String(80)),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_runs_started", "runs", ["started", "id"])
    op.create_index("ix_runs_experiment_started", "runs", ["experiment", "started"])
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_index("ix_runs_record", "runs", ["record"])
    op.create_index("ix_runs_parent", "runs", ["parent"])
    for table, value in (("params", sa.Text), ("tags", sa.Text)):
        op.create_table(
            table,
            sa.Column("run_id", sa.String(36), primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", value, nullable=False),
            *([sa.Column("num", sa.Float)] if table == "params" else []),
        )
    op.create_index("ix_params_key_num", "params", ["key", "num", "run_id"])
    op.create_index("ix_tags_key", "tags", ["key"])
    op.create_table(
        "metrics",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("last", sa.Float),
        sa.Column("min", sa.Float),
        sa.Column("max", sa.Float),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_metrics_key_last", "metrics", ["key", "last", "run_id"])
    op.create_table(
        "data",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("role", sa.String(8), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("object", sa.String(80), nullable=False),
    )
    op.create_index("ix_data_object", "data", ["object"])
    op.create_index("ix_data_path", "data", ["path"])


def downgrade() -> None:
    for table in ("data", "metrics", "tags", "params", "runs"):
        op.drop_table(table)
