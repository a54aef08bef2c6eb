"""The Flask application factory. Everything is built here, from a Config; nothing at import."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from flask import Flask, Response, g, request

from catalogue import web
from catalogue.api import cohorts, dcat, harvest, oai, system, v1
from catalogue.api.errors import register_error_handlers
from catalogue.config import Config, load_config
from catalogue.errors import Unauthenticated
from catalogue.metrics import UNMATCHED, Metrics
from catalogue.model.identity import ANONYMOUS
from catalogue.runtime import Runtime

log = logging.getLogger("catalogue.access")


def create_app(
    config: Config | None = None, runtime: Runtime | None = None, background_indexer: bool = True
) -> Flask:
    """Build the WSGI app. Without ``runtime`` one is started from ``config`` (and closed with
    the app's ``close_runtime``)."""
    config = config or (runtime.config if runtime else load_config())
    if runtime is None:
        runtime = Runtime(config).start(background_indexer=background_indexer)
    app = Flask("catalogue", static_folder=None)  # static files: catalogue/web/static
    app.config.update(
        SECRET_KEY=runtime.secret_key,
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        JSON_SORT_KEYS=False,
        # the web pages' sign-in session (catalogue.web.auth); the JSON API never reads it
        SESSION_COOKIE_NAME="catalogue_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.production
        or config.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["catalogue"] = runtime
    metrics = Metrics(runtime)
    app.extensions["catalogue_metrics"] = metrics
    register_error_handlers(app)

    @app.before_request
    def _identify() -> None:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        g.started = time.perf_counter()
        g.identity = ANONYMOUS
        header = request.headers.get("Authorization", "")
        if header and request.path != "/metrics":  # /metrics checks its own scrape token
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("use 'Authorization: Bearer <token>'")
            g.identity = runtime.identities.authenticate(token)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        rule = request.url_rule.rule if request.url_rule is not None else None
        metrics.observe(request.method, rule, response.status_code, elapsed)
        if log.isEnabledFor(logging.INFO):  # the structured fields cost a dict per request
            identity = g.get("identity", ANONYMOUS)
            # ids, route, status and timing only: never bodies, query strings, headers or tokens
            log.info(
                "%s %s %s %.1fms id=%s",
                request.method,
                request.path,
                response.status_code,
                elapsed * 1000,
                g.get("request_id", ""),
                extra={"request_id": g.get("request_id", ""), "method": request.method,
                       "route": rule or UNMATCHED, "path": request.path,
                       "status": response.status_code, "duration_ms": round(elapsed * 1000, 2),
                       "role": getattr(identity.role, "value", None) or "anonymous"},
            )
        return response

    app.register_blueprint(system.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(harvest.bp)
    app.register_blueprint(cohorts.bp)
    app.register_blueprint(dcat.bp)
    app.register_blueprint(oai.bp)

    web.register(app)

    def close_runtime() -> None:
        runtime.close()

    app.extensions["catalogue_close"] = close_runtime
    return app
