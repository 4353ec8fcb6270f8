"""Users, per-project roles and bearer tokens, with every change written to the audit table.

A token is ``tth_<id>_<secret>``: the id names it in lists and in ``revoke``; only the SHA-256 of
the whole token is stored, so a copy of the database lets nobody log in. It is shown once, when
made. Roles are ordered (reader < writer < approver < admin); a role on project ``*`` holds in every
project, and the stronger of a user's roles counts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tether.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    UsageError,
)
from tether.meta.engine import reading
from tether.team import schema as s

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

ROLES = ("reader", "writer", "approver", "admin")
RANK = {role: n for n, role in enumerate(ROLES, 1)}
EVERY_PROJECT = "*"
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
TOKEN = re.compile(r"tth_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
BACKUP_FORMAT = 1
SESSION_S = 12 * 3600


@dataclass(frozen=True)
class Identity:
    """Who a request comes from, and the roles they hold (project -> role)."""

    user: str
    roles: Mapping[str, str]
    token: str = ""  # the token's public id ("" for an OIDC identity)

    def role_in(self, project: str) -> str | None:
        held = [r for p, r in self.roles.items() if p in (project, EVERY_PROJECT)]
        return max(held, key=RANK.__getitem__, default=None)

    def require(self, project: str, needed: str) -> None:
        held = self.role_in(project)
        if held is None or RANK[held] < RANK[needed]:
            has = f"is {held} there" if held else "has no role there"
            raise PermissionDeniedError(
                f"{self.user} {has}; this needs {needed} in project {project}: "
                f"an admin can run `tether server user add {self.user} --role {needed} "
                f"--project {project}`"
            )


ANONYMOUS = Identity("anonymous", {EVERY_PROJECT: "admin"})  # a loopback server without accounts


def check_name(name: str, what: str = "user") -> str:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a valid {what} name: lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    return name


def check_role(role: str) -> str:
    if role not in RANK:
        raise UsageError(f"{role!r} is not a role: use one of {', '.join(ROLES)}")
    return role


def _gone(user: str) -> AuthenticationError:
    return AuthenticationError(f"user {user} is disabled or gone: ask an admin")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._has_users = False

    # -- reading ---------------------------------------------------------------------------
    def any_user(self) -> bool:
        """Whether the server has accounts. Once it has, it is never open again in this
        process (the answer is kept: the safe direction if a restore removed every user)."""
        from sqlalchemy import select

        if self._has_users:
            return True
        with reading(self.engine) as conn:
            self._has_users = conn.execute(select(s.users.c.name).limit(1)).first() is not None
        return self._has_users

    def authenticate(self, token: str, *, now: float | None = None) -> Identity:
        """The identity a bearer token stands for; 401 with the way out otherwise."""
        from sqlalchemy import select

        match = TOKEN.fullmatch(token.strip())
        if match is None:
            raise AuthenticationError(
                "that is not a Tether token (they look like tth_…): "
                "`tether server token create` makes one"
            )
        t, u, r = s.tokens.c, s.users.c, s.roles.c
        query = (  # the token, its user and the user's roles in one round trip
            select(t.id, t.user, t.revoked, t.expires, u.disabled, r.project, r.role)
            .select_from(
                s.tokens.outerjoin(s.users, u.name == t.user).outerjoin(s.roles, r.user == t.user)
            )
            .where(t.hash == hash_token(token.strip()))
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise AuthenticationError(
                "this token is not known to the server: ask an admin for a new one "
                "(`tether server token create --user NAME`), then `tether server login`"
            )
        row, now = rows[0], time.time() if now is None else now
        if row.revoked is not None:
            raise AuthenticationError(
                f"token {row.id} was revoked: ask an admin for a new one, then "
                "`tether server login`"
            )
        if row.expires is not None and row.expires <= now:
            raise AuthenticationError(
                f"token {row.id} expired: ask an admin for a new one "
                "(`tether server token create --user NAME --expires 90d`)"
            )
        if row.disabled is not False:  # None: the user is gone
            raise _gone(row.user)
        roles = {x.project: x.role for x in rows if x.project is not None}
        return Identity(row.user, roles, row.id)

    def identity_by_oidc(self, value: str, claim: str) -> Identity:
        """The user an admin mapped to an OIDC claim's value."""
        from sqlalchemy import select

        with reading(self.engine) as conn:
            row = conn.execute(
                select(s.users.c.name).where(s.users.c.oidc_subject == value)
            ).first()
            if row is None:
                raise AuthenticationError(
                    f"no user is mapped to {claim} {value!r}: an admin runs "
                    f"`tether server user add NAME --role ROLE --oidc {value}`"
                )
            return self._identity(conn, row.name)

    def identity_of(self, user: str) -> Identity:
        with reading(self.engine) as conn:
            return self._identity(conn, user)

    def _identity(self, conn: Connection, user: str, token: str = "") -> Identity:
        from sqlalchemy import select

        found = conn.execute(select(s.users).where(s.users.c.name == user)).first()
        if found is None or found.disabled:
            raise _gone(user)
        roles = conn.execute(select(s.roles).where(s.roles.c.user == user)).all()
        return Identity(user, {r.project: r.role for r in roles}, token)

    def users(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            roles: dict[str, dict[str, str]] = {}
            for r in conn.execute(select(s.roles)):
                roles.setdefault(r.user, {})[r.project] = r.role
            return [
                {"name": u.name, "disabled": u.disabled, "roles": roles.get(u.name, {})}
                for u in conn.execute(select(s.users).order_by(s.users.c.name))
            ]

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        from sqlalchemy import select

        query = select(s.tokens).order_by(s.tokens.c.created)
        if user is not None:
            query = query.where(s.tokens.c.user == user)
        with self.engine.connect() as conn:
            return [
                {
                    "id": t.id,
                    "user": t.user,
                    "label": t.label,
                    "created": t.created,
                    "expires": t.expires,
                    "revoked": t.revoked,
                }
                for t in conn.execute(query)
            ]

    def audit_log(self, limit: int = 1000) -> list[dict[str, Any]]:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            rows = conn.execute(select(s.audit).order_by(s.audit.c.seq.desc()).limit(limit))
            return [
                {
                    "seq": r.seq,
                    "time": r.time,
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "detail": json.loads(r.detail),
                }
                for r in rows
            ][::-1]

    # -- changes (each audited, in the same transaction) -----------------------------------
    def init(self, admin: str) -> str:
        """Create the first admin and return their token; refused once any user exists."""
        check_name(admin)
        if self.any_user():
            raise ConflictError(
                "this server already has users: an admin adds more with `tether server user add`"
            )
        self.add_user(admin, "admin", EVERY_PROJECT, actor=admin)
        return self.create_token(admin, label="made by `tether server init`", actor=admin)[1]

    def add_user(
        self,
        name: str,
        role: str,
        project: str = EVERY_PROJECT,
        *,
        actor: str,
        oidc: str | None = None,
    ) -> None:
        """Add a user (or give an existing one ``role`` in ``project``); ``oidc`` maps the
        value of the server's OIDC claim (an e-mail, a subject) to them."""
        from sqlalchemy import select

        check_name(name)
        check_role(role)
        if project != EVERY_PROJECT:
            check_name(project, "project")
        with self.engine.begin() as conn:
            if conn.execute(select(s.users.c.name).where(s.users.c.name == name)).first() is None:
                conn.execute(
                    s.users.insert().values(name=name, created=time.time(), disabled=False)
                )
                self._audit(conn, actor, "user.add", name, {})
            if oidc is not None:
                taken = conn.execute(
                    select(s.users.c.name).where(
                        (s.users.c.oidc_subject == oidc) & (s.users.c.name != name)
                    )
                ).first()
                if taken is not None:
                    raise ConflictError(f"{oidc!r} already names user {taken.name}")
                conn.execute(
                    s.users.update().where(s.users.c.name == name).values(oidc_subject=oidc)
                )
                self._audit(conn, actor, "user.oidc", name, {"oidc": oidc})
            conn.execute(
                s.roles.delete().where((s.roles.c.user == name) & (s.roles.c.project == project))
            )
            conn.execute(s.roles.insert().values(user=name, project=project, role=role))
            self._audit(conn, actor, "role.set", name, {"project": project, "role": role})

    def disable_user(self, name: str, *, actor: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                s.users.update().where(s.users.c.name == name).values(disabled=True)
            )
            if done.rowcount == 0:
                raise UsageError(f"there is no user {name}: `tether server user list` shows them")
            self._audit(conn, actor, "user.disable", name, {})

    def create_token(
        self, user: str, *, expires_in: float | None = None, label: str = "", actor: str
    ) -> tuple[str, str]:
        """A new token for ``user``: (public id, the token itself, shown only now)."""
        from sqlalchemy import select

        token_id = secrets.token_hex(6)
        token = f"tth_{token_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        with self.engine.begin() as conn:
            if conn.execute(select(s.users.c.name).where(s.users.c.name == user)).first() is None:
                raise UsageError(
                    f"there is no user {user}: add them first with "
                    f"`tether server user add {user} --role reader`"
                )
            conn.execute(
                s.tokens.insert().values(
                    id=token_id,
                    hash=hash_token(token),
                    user=user,
                    label=label,
                    created=now,
                    expires=None if expires_in is None else now + expires_in,
                )
            )
            self._audit(conn, actor, "token.create", user, {"token": token_id})
        return token_id, token

    def revoke_token(self, token_id: str, *, actor: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                s.tokens.update()
                .where((s.tokens.c.id == token_id) & s.tokens.c.revoked.is_(None))
                .values(revoked=time.time())
            )
            if done.rowcount == 0:
                raise UsageError(
                    f"there is no live token {token_id}: `tether server token list` shows them"
                )
            self._audit(conn, actor, "token.revoke", token_id, {})

    def audit(self, actor: str, action: str, target: str, detail: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            self._audit(conn, actor, action, target, detail)

    @staticmethod
    def _audit(
        conn: Connection, actor: str, action: str, target: str, detail: Mapping[str, Any]
    ) -> None:
        conn.execute(
            s.audit.insert().values(
                time=time.time(),
                actor=actor,
                action=action,
                target=target,
                detail=json.dumps(dict(detail), sort_keys=True),
            )
        )

    # -- browser sessions ------------------------------------------------------------------
    def open_session(self, identity: Identity, *, lifetime: float = SESSION_S) -> tuple[str, str]:
        """A browser session for ``identity``: (the cookie's secret, the CSRF token)."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(s.sessions.delete().where(s.sessions.c.expires < now))
            conn.execute(
                s.sessions.insert().values(
                    hash=hash_token(secret),
                    user=identity.user,
                    csrf=csrf,
                    created=now,
                    expires=now + lifetime,
                )
            )
            self._audit(conn, identity.user, "session.open", identity.user, {})
        return secret, csrf

    def session(self, secret: str, csrf: str | None, *, write: bool) -> Identity:
        """The identity of a session cookie; a write must echo the session's CSRF token."""
        from sqlalchemy import select

        with reading(self.engine) as conn:
            row = conn.execute(
                select(s.sessions).where(s.sessions.c.hash == hash_token(secret))
            ).first()
            if row is None or row.expires <= time.time():
                raise AuthenticationError("the session ended: log in again")
            if write and not (csrf and hmac.compare_digest(csrf, row.csrf)):
                raise PermissionDeniedError(
                    "a write from a browser session needs its X-CSRF-Token header"
                )
            return self._identity(conn, row.user)

    def csrf(self, secret: str) -> str | None:
        """The CSRF token of a live session (a page hands it to its own scripts), else None."""
        from sqlalchemy import select

        with reading(self.engine) as conn:
            row = conn.execute(
                select(s.sessions.c.csrf, s.sessions.c.expires).where(
                    s.sessions.c.hash == hash_token(secret)
                )
            ).first()
        return None if row is None or row.expires <= time.time() else str(row.csrf)

    def close_session(self, secret: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(s.sessions.delete().where(s.sessions.c.hash == hash_token(secret)))

    # -- backup ----------------------------------------------------------------------------
    def backup(self) -> dict[str, Any]:
        """Everything the server cannot rebuild from objects: projects, users, roles, tokens
        (hashed) and the audit log, as one JSON-able document."""
        from sqlalchemy import select

        tables = (s.projects, s.users, s.roles, s.tokens, s.audit)
        with self.engine.connect() as conn:
            return {
                "tether": "server-backup",
                "format": BACKUP_FORMAT,
                "tables": {
                    t.name: [dict(row._mapping) for row in conn.execute(select(t))] for t in tables
                },
            }

    def restore(self, document: Mapping[str, Any]) -> dict[str, int]:
        """Replace accounts with a backup's, in one transaction; how many rows per table."""
        if document.get("tether") != "server-backup" or document.get("format") != BACKUP_FORMAT:
            raise UsageError(
                "this is not a Tether server backup of a format this version reads "
                f"(format {BACKUP_FORMAT})"
            )
        tables = (s.projects, s.users, s.roles, s.tokens, s.audit)
        counts: dict[str, int] = {}
        with self.engine.begin() as conn:
            for t in reversed(tables):
                conn.execute(t.delete())
            for t in tables:
                rows = list(document["tables"].get(t.name, []))
                known = set(t.c.keys())
                rows = [{k: v for k, v in row.items() if k in known} for row in rows]
                if rows:
                    conn.execute(t.insert(), rows)
                counts[t.name] = len(rows)
            if conn.dialect.name == "postgresql" and counts["tether_audit"]:
                from sqlalchemy import text

                conn.execute(  # restored rows carry their seq: move the sequence past them
                    text(
                        "SELECT setval(pg_get_serial_sequence('tether_audit', 'seq'), "
                        "(SELECT max(seq) FROM tether_audit))"
                    )
                )
        return counts
