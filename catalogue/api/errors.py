"""Every error leaves the API in one JSON shape::

    {"error": {"status": 403, "code": "forbidden", "message": "...", "details": null,
               "request_id": "..."}}

Mapping from exceptions to HTTP happens here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from catalogue.errors import CatalogueError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {
        "error": {
            "status": status,
            "code": code,
            "message": message,
            "details": details,
            "request_id": getattr(g, "request_id", ""),
        }
    }
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="catalogue"'
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CatalogueError)
    def _catalogue(exc: CatalogueError) -> Response:
        if exc.status >= 500:
            log.warning("request failed: %s (%s)", exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 400:
            message = "the request could not be understood (malformed body or parameters)"
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(
            500,
            "internal_error",
            "internal error; the request id helps the operator find the cause",
        )
