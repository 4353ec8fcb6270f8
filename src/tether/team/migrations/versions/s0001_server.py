"""The server's first tables: projects, users, roles, tokens, the audit log, verified objects.

Revision ID: s0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tether_projects",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("git", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "tether_users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("oidc_subject", sa.String(300)),
    )
    op.create_table(
        "tether_roles",
        sa.Column("user", sa.String(64), primary_key=True),
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_table(
        "tether_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("expires", sa.Float),
        sa.Column("revoked", sa.Float),
    )
    op.create_table(
        "tether_audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "tether_objects",
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pack", sa.String(80)),
        sa.Column("offset", sa.BigInteger),
        sa.Column("stored", sa.Float, nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
    )
    op.create_index("ix_tether_objects_pack", "tether_objects", ["project", "pack"])


def downgrade() -> None:
    for table in (
        "tether_objects",
        "tether_audit",
        "tether_tokens",
        "tether_roles",
        "tether_users",
        "tether_projects",
    ):
        op.drop_table(table)
