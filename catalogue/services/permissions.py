"""Who may do what. Every write path calls one of these before touching the store."""

from __future__ import annotations

from catalogue.errors import Forbidden, Unauthenticated
from catalogue.model.identity import Identity, Role


def require_authenticated(identity: Identity) -> None:
    if not identity.authenticated:
        raise Unauthenticated()


def require_admin(identity: Identity) -> None:
    require_authenticated(identity)
    if not identity.is_admin:
        raise Forbidden("only administrators may do this")


def require_role(identity: Identity, *roles: Role) -> None:
    require_authenticated(identity)
    if identity.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")


def can_manage_organisation(identity: Identity, organisation_id: str) -> bool:
    return identity.is_admin or identity.member_of(organisation_id)


def require_organisation(identity: Identity, organisation_id: str) -> None:
    """Admins, or providers of this organisation."""
    require_authenticated(identity)
    if not can_manage_organisation(identity, organisation_id):
        raise Forbidden("you may only manage your own organisation's records")
