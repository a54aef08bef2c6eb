"""The ``web`` blueprint's frame: page rendering, navigation, assets, headers and error pages.

Every page extends ``web/base.html`` and is rendered with :func:`render`; a context processor
adds what the layout needs (navigation with ``aria-current``, the signed-in user, the CSRF
field, asset URLs). Areas added later (cohort builder, provider and admin pages) register their
routes on :data:`bp` and declare their entry in :data:`NAV`; the sign-in helpers
(:func:`~catalogue.web.auth.signed_in`, the CSRF check every POST passes) live in
:mod:`catalogue.web.auth`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from catalogue import __version__
from catalogue.errors import CatalogueError
from catalogue.model.identity import ANONYMOUS, Identity
from catalogue.runtime import Runtime

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

#: pages load nothing from elsewhere and run no inline script (JSON-LD data blocks do not run)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TITLES = {400: "The request is not valid", 401: "Sign-in required", 403: "Not allowed",
           404: "Page not found", 405: "Not allowed here", 409: "Conflict",
           413: "Too large", 429: "Too many requests", 503: "Temporarily unavailable"}


@dataclass(frozen=True)
class NavItem:
    """One entry of the main navigation: its page is ``endpoint`` (or one of ``aliases``);
    ``section`` lists the endpoints of pages under it."""

    endpoint: str
    label: str
    section: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    visible: Callable[[Identity], bool] = lambda identity: True


#: the main navigation, in order (areas for signed-in roles pass ``visible``)
NAV: tuple[NavItem, ...] = (
    NavItem("web.search", "Search datasets", section=("web.dataset",), aliases=("web.home",)),
    NavItem("web.cohorts", "Cohorts", section=("web.cohorts_count",),
            visible=lambda i: i.authenticated and i.role == "researcher"),
    NavItem("web.provider_home", "Provider", section=(
        "web.provider_upload", "web.provider_dataset", "web.provider_replace",
        "web.provider_publish", "web.provider_withdraw", "web.provider_sources",
        "web.provider_new_source", "web.provider_source", "web.provider_run_source",
        "web.provider_run"),
        visible=lambda i: i.authenticated and (i.is_admin or i.role == "provider")),
    NavItem("web.admin_home", "Admin", section=tuple(f"web.admin_{e}" for e in (
        "organisations", "organisations_create", "users", "users_create", "user_active",
        "tokens", "tokens_issue", "token_revoke", "budgets", "budgets_reset", "audit")),
        visible=lambda i: i.authenticated and i.is_admin),
)


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["catalogue"]
    return rt


def identity() -> Identity:
    """Who is asking (a Bearer token, else the signed-in session, else anonymous)."""
    ident: Identity = g.get("identity", ANONYMOUS)
    return ident


@functools.cache
def _fingerprint(filename: str) -> str:
    return hashlib.sha256((HERE / "static" / filename).read_bytes()).hexdigest()[:12]


def asset(filename: str) -> str:
    """URL of a static file, with its content hash so that it can be cached for a year."""
    return url_for("web.static", filename=filename, v=_fingerprint(filename))


def nav_items() -> list[dict[str, Any]]:
    """Visible entries with ``current``: "page" on the entry's own page, "true" within its
    section (the values of ``aria-current``), else None."""
    ident = identity()
    endpoint = request.endpoint or ""

    def current(item: NavItem) -> str | None:
        if endpoint == item.endpoint or endpoint in item.aliases:
            return "page"
        return "true" if endpoint in item.section else None

    return [{"url": url_for(item.endpoint), "label": item.label, "current": current(item)}
            for item in NAV if item.visible(ident)]


@bp.context_processor
def _layout() -> dict[str, Any]:
    """What ``base.html`` needs on every page of the blueprint."""
    from catalogue.web.auth import csrf_field

    return {"site_title": runtime().config.catalog_title, "version": __version__,
            "nav": nav_items(), "user": identity(), "csrf_field": csrf_field, "asset": asset}


def render(template: str, status: int = 200, **context: Any) -> Response:
    """A page: ``template`` (extending ``web/base.html``) with ``context``."""
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def number(value: Any) -> str:
    """``12345`` → "12,345" (None → "–")."""
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else str(value)


def error_page(status: int, message: str) -> Response:
    return render("web/error.html", status=status, status_code=status,
                  heading=_TITLES.get(status, "Something went wrong"), message=message,
                  request_id=g.get("request_id", ""))


@bp.app_template_filter("number")
def _number_filter(value: Any) -> str:
    return number(value)


@bp.app_template_global("marked")
def marked(text: str | None) -> Markup | None:
    """Search highlights as markup: HTML-escaped text with ``<mark>`` around matches.

    The search service escapes the text itself; this checks that nothing but ``<mark>`` and
    ``</mark>`` is left as markup before trusting it (else the text is shown escaped again)."""
    if not text:
        return None
    rest = text.replace("<mark>", "").replace("</mark>", "")
    if "<" in rest or ">" in rest or '"' in rest:
        return Markup.escape(rest)
    return Markup(text)  # noqa: S704 - checked above: escaped text and <mark> tags only


@bp.after_request
def _web_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.endpoint == "web.static" and request.args.get("v"):
        response.cache_control.public = True
        response.cache_control.max_age = 31_536_000
        response.cache_control.immutable = True
    elif identity().authenticated:
        response.cache_control.private = True
        response.cache_control.no_store = True
    return response


@bp.errorhandler(CatalogueError)
def _catalogue_error(exc: CatalogueError) -> Response:
    if exc.status >= 500:
        log.warning("page failed: %s (%s)", exc.code, exc.message)
    return error_page(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = exc.description or exc.name
    if status == 400:
        message = "The request could not be understood."
    return error_page(status, message)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on a page")
    return error_page(500, "An internal error occurred. The request id below helps the "
                           "operator find the cause.")
