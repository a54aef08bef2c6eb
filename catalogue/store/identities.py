"""Repositories for organisations, users and API tokens. SQL only; no permission checks here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from catalogue.errors import Conflict, NotFound, ValidationError
from catalogue.model.identity import ApiToken, Organisation, Role, User
from catalogue.store.db import Connection


def _org(row: dict[str, Any]) -> Organisation:
    return Organisation(
        id=row["id"],
        name=row["name"],
        country=row["country"],
        homepage=row["homepage"],
        created_at=row["created_at"],
    )


def _user(row: dict[str, Any]) -> User:
    return User(
        id=str(row["id"]),
        username=row["username"],
        role=Role(row["role"]),
        organisation_id=row["organisation_id"],
        display_name=row["display_name"],
        email=row["email"],
        active=row["active"],
        created_at=row["created_at"],
    )


def _token(row: dict[str, Any]) -> ApiToken:
    return ApiToken(
        id=row["id"],
        user_id=str(row["user_id"]),
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        username=row.get("username"),
    )


class OrganisationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, org: Organisation) -> Organisation:
        try:
            with self.conn.transaction():
                row = self.conn.execute(
                    "INSERT INTO organisations (id, name, country, homepage) "
                    "VALUES (%s, %s, %s, %s) RETURNING *",
                    (org.id, org.name, org.country, org.homepage),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"organisation {org.id!r} already exists") from None
        except psycopg.errors.CheckViolation:
            raise ValidationError(
                "organisation id must be 2-63 lowercase letters, digits or dashes and the "
                "country an ISO 3166 alpha-2 code"
            ) from None
        assert row is not None
        return _org(row)

    def get(self, org_id: str) -> Organisation:
        row = self.conn.execute("SELECT * FROM organisations WHERE id = %s", (org_id,)).fetchone()
        if row is None:
            raise NotFound(f"organisation {org_id!r} not found")
        return _org(row)

    def list(self) -> list[Organisation]:
        rows = self.conn.execute("SELECT * FROM organisations ORDER BY id").fetchall()
        return [_org(r) for r in rows]


class UserRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, user: User) -> User:
        try:
            with self.conn.transaction():
                row = self.conn.execute(
                    "INSERT INTO users (username, display_name, email, role, organisation_id) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING *",
                    (
                        user.username,
                        user.display_name,
                        user.email,
                        user.role.value,
                        user.organisation_id,
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"user {user.username!r} already exists") from None
        except psycopg.errors.ForeignKeyViolation:
            raise ValidationError(f"organisation {user.organisation_id!r} does not exist") from None
        except psycopg.errors.CheckViolation:
            raise ValidationError(
                "username must be 2-100 characters (letters, digits, . _ @ -); providers need "
                "an organisation"
            ) from None
        assert row is not None
        return _user(row)

    def get(self, user_id: str) -> User:
        row = self.conn.execute("SELECT * FROM users WHERE id::text = %s", (user_id,)).fetchone()
        if row is None:
            raise NotFound("user not found")
        return _user(row)

    def get_by_username(self, username: str) -> User:
        row = self.conn.execute("SELECT * FROM users WHERE username = %s", (username,)).fetchone()
        if row is None:
            raise NotFound(f"user {username!r} not found")
        return _user(row)

    def list(self, organisation_id: str | None = None) -> list[User]:
        if organisation_id:
            rows = self.conn.execute(
                "SELECT * FROM users WHERE organisation_id = %s ORDER BY username",
                (organisation_id,),
            ).fetchall()
        else:
            rows = self.conn.execute("SELECT * FROM users ORDER BY username").fetchall()
        return [_user(r) for r in rows]

    def set_active(self, user_id: str, active: bool) -> User:
        row = self.conn.execute(
            "UPDATE users SET active = %s WHERE id::text = %s RETURNING *", (active, user_id)
        ).fetchone()
        if row is None:
            raise NotFound("user not found")
        return _user(row)


class TokenRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(
        self, token_id: str, user_id: str, name: str, token_hash: str, expires_at: datetime | None
    ) -> ApiToken:
        row = self.conn.execute(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, expires_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (token_id, user_id, name, token_hash, expires_at),
        ).fetchone()
        assert row is not None
        return _token(row)

    def find_for_auth(self, token_id: str) -> dict[str, Any] | None:
        """Token row joined with its user, for authentication."""
        return self.conn.execute(
            "SELECT t.id, t.token_hash, t.expires_at, t.revoked_at, t.last_used_at, "
            "u.id AS user_id, u.username, u.role, u.organisation_id, u.active "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = %s",
            (token_id,),
        ).fetchone()

    def touch(self, token_id: str) -> None:
        self.conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = %s "
            "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            (token_id,),
        )

    def get(self, token_id: str) -> ApiToken:
        row = self.conn.execute(
            "SELECT t.*, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.id = %s",
            (token_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"token {token_id!r} not found")
        return _token(row)

    def list(self, user_id: str | None = None) -> list[ApiToken]:
        sql = "SELECT t.*, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id "
        if user_id:
            rows = self.conn.execute(
                sql + "WHERE t.user_id::text = %s ORDER BY t.created_at", (user_id,)
            ).fetchall()
        else:
            rows = self.conn.execute(sql + "ORDER BY t.created_at").fetchall()
        return [_token(r) for r in rows]

    def revoke(self, token_id: str) -> ApiToken:
        row = self.conn.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
            "RETURNING *",
            (token_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"token {token_id!r} not found")
        return _token(row)
