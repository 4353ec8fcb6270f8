"""The server's own tables (SQLAlchemy Core). Unlike a project's run index these are not a cache:
accounts, roles and tokens exist nowhere else (``tether server backup`` keeps them), and the
``objects`` table is the server's word that an object was received and verified.
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

SCHEMA_VERSION = "s0002"  # the Alembic head of the server's tables
VERSION_TABLE = "tether_server_version"

metadata = MetaData()

projects = Table(
    "tether_projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("git", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
)

users = Table(
    "tether_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("oidc_subject", String(300)),  # the claim value an OIDC token maps to this user by
)

roles = Table(
    "tether_roles",
    metadata,
    Column("user", String(64), primary_key=True),
    Column("project", String(64), primary_key=True),  # "*": every project
    Column("role", String(16), nullable=False),
)

tokens = Table(
    "tether_tokens",
    metadata,
    Column("id", String(16), primary_key=True),  # public: names the token in lists and revoke
    Column("hash", String(64), nullable=False, unique=True),  # sha256 of the secret
    Column("user", String(64), nullable=False),
    Column("label", String(200), nullable=False, default=""),
    Column("created", Float, nullable=False),
    Column("expires", Float),
    Column("revoked", Float),
)

audit = Table(
    "tether_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
)

objects = Table(
    "tether_objects",
    metadata,
    Column("project", String(64), primary_key=True),
    Column("id", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("pack", String(80)),  # None: stored loose; else the pack file that holds it
    Column("offset", BigInteger),
    Column("stored", Float, nullable=False),
    Column("by", String(64), nullable=False, default=""),
)
Index("ix_tether_objects_pack", objects.c.project, objects.c.pack)

sessions = Table(
    "tether_sessions",
    metadata,
    Column("hash", String(64), primary_key=True),  # sha256 of the cookie's secret
    Column("user", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),  # the token a write must echo in X-CSRF-Token
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
)
