"""One exception hierarchy. Each class carries its HTTP status, a stable code and a safe message.

The API maps any :class:`CatalogueError` to the JSON error shape in one place
(``catalogue.api.errors``); infrastructure failures are translated into these classes where they
happen (store, search), so no driver exception text reaches a client.
"""

from __future__ import annotations

from typing import Any


class CatalogueError(Exception):
    """Base class. ``message`` is safe to show to any caller."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message()
        self.details = details
        super().__init__(self.message)

    def default_message(self) -> str:
        return "internal error"


class ConfigError(CatalogueError):
    """Invalid configuration: raised at startup, printed by the CLI."""

    code = "config_error"


class ValidationError(CatalogueError):
    status = 400
    code = "invalid_request"

    def default_message(self) -> str:
        return "the request is not valid"


class Unauthenticated(CatalogueError):
    status = 401
    code = "unauthenticated"

    def default_message(self) -> str:
        return "authentication required: send 'Authorization: Bearer <token>'"


class Forbidden(CatalogueError):
    status = 403
    code = "forbidden"

    def default_message(self) -> str:
        return "you are not allowed to do this"


class NotFound(CatalogueError):
    status = 404
    code = "not_found"

    def default_message(self) -> str:
        return "not found"


class MethodNotAllowed(CatalogueError):
    status = 405
    code = "method_not_allowed"


class Conflict(CatalogueError):
    status = 409
    code = "conflict"


class PayloadTooLarge(CatalogueError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(CatalogueError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(CatalogueError):
    status = 429
    code = "too_many_requests"


class ServiceUnavailable(CatalogueError):
    status = 503
    code = "service_unavailable"


class StoreUnavailable(ServiceUnavailable):
    code = "store_unavailable"

    def default_message(self) -> str:
        return "the database is unavailable; try again shortly"


class SearchUnavailable(ServiceUnavailable):
    code = "search_unavailable"

    def default_message(self) -> str:
        return "the search engine is unavailable; try again shortly"


class MigrationError(CatalogueError):
    code = "migration_error"
