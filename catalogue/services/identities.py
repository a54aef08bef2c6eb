"""Organisations, users and API tokens: creation, listing, authentication, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from catalogue.errors import Forbidden, NotFound, Unauthenticated, ValidationError
from catalogue.model.identity import (
    ApiToken,
    Identity,
    IssuedToken,
    Organisation,
    Role,
    User,
)
from catalogue.services.permissions import require_admin, require_authenticated
from catalogue.store.audit import audit
from catalogue.store.db import Database
from catalogue.store.identities import OrganisationRepository, TokenRepository, UserRepository

#: how stale a token's ``last_used_at`` may be before a request writes it again (a write on
#: every request would cost a round trip each)
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_PREFIX = "cic"  # noqa: S105 - a public prefix, not a secret


def hash_secret(secret: str) -> str:
    """Tokens carry 256 random bits, so one SHA-256 round is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    """``cic_<id>.<secret>`` → (id, secret); raise ``Unauthenticated`` if malformed."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition(".")
    if prefix != TOKEN_PREFIX or not token_id or not secret or len(token) > 200:
        raise Unauthenticated("the bearer token is malformed")
    return f"{TOKEN_PREFIX}_{token_id}", secret


class IdentityService:
    def __init__(self, db: Database, token_ttl_days: int = 90) -> None:
        self.db = db
        self.token_ttl_days = token_ttl_days

    # -- organisations ------------------------------------------------------------------------
    def create_organisation(self, identity: Identity, org: Organisation) -> Organisation:
        require_admin(identity)
        with self.db.transaction() as conn:
            created = OrganisationRepository(conn).create(org)
            audit(conn, identity, "organisation.create", "organisation", created.id)
        return created

    def list_organisations(self) -> list[Organisation]:
        with self.db.transaction() as conn:
            return OrganisationRepository(conn).list()

    def get_organisation(self, org_id: str) -> Organisation:
        with self.db.transaction() as conn:
            return OrganisationRepository(conn).get(org_id)

    # -- users --------------------------------------------------------------------------------
    def create_user(self, identity: Identity, user: User) -> User:
        require_admin(identity)
        if user.role == Role.PROVIDER and not user.organisation_id:
            raise ValidationError("a provider must belong to an organisation")
        with self.db.transaction() as conn:
            created = UserRepository(conn).create(user)
            audit(
                conn,
                identity,
                "user.create",
                "user",
                created.id,
                {"role": created.role.value, "organisation": created.organisation_id},
            )
        return created

    def list_users(self, identity: Identity) -> list[User]:
        require_admin(identity)
        with self.db.transaction() as conn:
            return UserRepository(conn).list()

    def get_user(self, identity: Identity, username: str) -> User:
        require_authenticated(identity)
        if not identity.is_admin and identity.username != username:
            raise Forbidden("you may only see your own account")
        with self.db.transaction() as conn:
            return UserRepository(conn).get_by_username(username)

    def set_user_active(self, identity: Identity, username: str, active: bool) -> User:
        require_admin(identity)
        with self.db.transaction() as conn:
            repo = UserRepository(conn)
            user = repo.set_active(repo.get_by_username(username).id, active)
            audit(conn, identity, "user.activate" if active else "user.deactivate", "user", user.id)
        return user

    # -- tokens -------------------------------------------------------------------------------
    def issue_token(
        self, identity: Identity, username: str, name: str = "", ttl_days: int | None = None
    ) -> IssuedToken:
        """Create a token for ``username`` (admins: anyone; others: themselves)."""
        require_authenticated(identity)
        if not identity.is_admin and identity.username != username:
            raise Forbidden("you may only create tokens for yourself")
        days = self.token_ttl_days if ttl_days is None else ttl_days
        if days < 0 or days > 3650:
            raise ValidationError("token lifetime must be between 0 and 3650 days")
        if len(name) > 200:
            raise ValidationError("token name is too long (200 characters at most)")
        token_id = f"{TOKEN_PREFIX}_{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        with self.db.transaction() as conn:
            user = UserRepository(conn).get_by_username(username)
            if not user.active:
                raise ValidationError(f"user {username!r} is deactivated")
            token = TokenRepository(conn).create(
                token_id, user.id, name, hash_secret(secret), expires
            )
            audit(conn, identity, "token.create", "token", token_id, {"user": username})
        return IssuedToken(token=token, secret=f"{token_id}.{secret}")

    def list_tokens(self, identity: Identity, username: str | None = None) -> list[ApiToken]:
        require_authenticated(identity)
        with self.db.transaction() as conn:
            if identity.is_admin:
                user_id = UserRepository(conn).get_by_username(username).id if username else None
            else:
                if username and username != identity.username:
                    raise Forbidden("you may only list your own tokens")
                user_id = identity.user_id
            return TokenRepository(conn).list(user_id)

    def revoke_token(self, identity: Identity, token_id: str) -> ApiToken:
        require_authenticated(identity)
        with self.db.transaction() as conn:
            repo = TokenRepository(conn)
            try:
                token = repo.get(token_id)
            except NotFound:
                raise NotFound("token not found") from None
            if not identity.is_admin and token.user_id != identity.user_id:
                # do not reveal that someone else's token exists
                raise NotFound("token not found")
            revoked = repo.revoke(token_id)
            audit(conn, identity, "token.revoke", "token", token_id)
        return revoked

    def authenticate(self, bearer: str) -> Identity:
        """The identity a bearer token stands for; ``Unauthenticated`` if it does not."""
        token_id, secret = split_token(bearer.strip())
        with self.db.statement() as conn:  # a read, and at most one write of its own
            repo = TokenRepository(conn)
            row = repo.find_for_auth(token_id)
            expected = row["token_hash"] if row else hash_secret("x" * 43)
            valid = hmac.compare_digest(expected, hash_secret(secret))
            if row is None or not valid:
                raise Unauthenticated("the bearer token is not valid")
            return self._usable(repo, row, token_id)

    def resume(self, token_id: str) -> Identity:
        """The identity of a token whose secret was checked earlier (a browser session signed
        with the server secret holds only the token's id): checked again for revocation,
        expiry and the account's state, so that a session ends with its token."""
        with self.db.statement() as conn:  # a read, and at most one write of its own
            repo = TokenRepository(conn)
            row = repo.find_for_auth(token_id)
            if row is None:
                raise Unauthenticated("the token of this session no longer exists")
            return self._usable(repo, row, token_id)

    @staticmethod
    def _usable(repo: TokenRepository, row: dict[str, Any], token_id: str) -> Identity:
        if row["revoked_at"] is not None:
            raise Unauthenticated("the bearer token was revoked")
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            raise Unauthenticated("the bearer token has expired")
        if not row["active"]:
            raise Unauthenticated("the account is deactivated")
        used = row["last_used_at"]
        if used is None or used < datetime.now(UTC) - TOUCH_EVERY:
            repo.touch(token_id)  # (the statement checks the same against the server's clock)
        return Identity(
            user_id=str(row["user_id"]),
            username=row["username"],
            role=Role(row["role"]),
            organisation_id=row["organisation_id"],
            token_id=token_id,
        )
