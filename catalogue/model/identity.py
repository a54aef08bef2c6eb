"""Organisations, users, tokens and the identity a service call is made with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PROVIDER = "provider"
    RESEARCHER = "researcher"


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    country: str | None = None
    homepage: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: Role
    organisation_id: str | None = None
    display_name: str | None = None
    email: str | None = None
    active: bool = True
    created_at: datetime | None = None


@dataclass(frozen=True)
class ApiToken:
    """A token's metadata. The secret is never stored; see ``IssuedToken``."""

    id: str
    user_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    username: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """Returned once, when a token is created: ``secret`` is the full bearer token."""

    token: ApiToken
    secret: str


@dataclass(frozen=True)
class Identity:
    """Who is calling a service. Anonymous callers have no user."""

    user_id: str | None = None
    username: str | None = None
    role: Role | None = None
    organisation_id: str | None = None
    token_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def member_of(self, organisation_id: str | None) -> bool:
        return (
            organisation_id is not None
            and self.role == Role.PROVIDER
            and self.organisation_id == organisation_id
        )


ANONYMOUS = Identity()
SYSTEM = Identity(
    user_id="00000000-0000-0000-0000-000000000000", username="system", role=Role.ADMIN
)
