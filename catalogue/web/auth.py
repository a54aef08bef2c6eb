"""Browser sign-in on top of the token model, and CSRF protection for the pages' forms.

There are no passwords: a user pastes one of their API tokens into ``/signin``. It is checked
like a bearer token; the session (Flask's cookie, signed with the server secret, HttpOnly,
SameSite=Lax, Secure on https) then holds only the token's *id*, and every request checks that
token again (:meth:`IdentityService.resume`), so a revoked or expired token, or a deactivated
user, loses access at once. Only the ``web`` blueprint reads the session: the JSON API still
authenticates with ``Authorization: Bearer`` alone, so a cookie never authorises an API write.

Every state-changing page request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token
in the ``csrf_token`` form field (or the ``X-CSRF-Token`` header) and, when the browser sends
one, an ``Origin`` of this site.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import flash, g, redirect, request, session, url_for
from markupsafe import Markup, escape
from werkzeug.wrappers import Response as BaseResponse

from catalogue.errors import Forbidden, Unauthenticated
from catalogue.model.identity import Role
from catalogue.web.site import bp, identity, render, runtime

SESSION_TOKEN = "token_id"  # noqa: S105 - the session key, not a secret
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

F = TypeVar("F", bound=Callable[..., Any])


# -- session identity and CSRF (run before every page) --------------------------------------
@bp.before_request
def load_session_identity() -> None:
    """The signed-in user of a page request (a Bearer header, if any, was already read)."""
    if identity().authenticated or request.endpoint == "web.static":
        return
    token_id = session.get(SESSION_TOKEN)
    if not token_id:
        return
    try:
        g.identity = runtime().identities.resume(str(token_id))
    except Unauthenticated as exc:
        session.clear()
        flash(f"You have been signed out: {exc.message}.", "warning")


@bp.before_request
def check_csrf() -> None:
    """Refuse a state-changing request without this session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin")
    if origin and origin not in _own_origins():
        raise Forbidden("this form was sent from another site")
    expected = session.get(SESSION_CSRF)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected).encode(), given.encode()):
        raise Forbidden("the form has expired or did not come from this site; reload the page "
                        "and try again")


def _own_origins() -> set[str]:
    origins = {request.host_url.rstrip("/")}
    base = urlsplit(runtime().config.public_base_url)
    if base.scheme and base.netloc:
        origins.add(f"{base.scheme}://{base.netloc}")
    return origins


def csrf_token() -> str:
    """This session's CSRF token (created, and the session cookie set, on first use)."""
    token = session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return str(token)


def csrf_field() -> Markup:
    """The hidden form field every POST form of the pages includes."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(csrf_token()))


# -- helpers for pages that need a signed-in user ----------------------------------------------
def signin_url() -> str:
    """The sign-in page, coming back to the current page afterwards."""
    here = request.full_path if request.query_string else request.path
    return url_for("web.signin", next=here)


def signed_in(*roles: Role) -> Callable[[F], F]:
    """Decorate a page view: anonymous users are sent to sign in, other roles than ``roles``
    (when given; admins always pass) get 403."""
    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ident = identity()
            if not ident.authenticated:
                return redirect(signin_url())
            if roles and not ident.is_admin and ident.role not in roles:
                raise Forbidden("your account's role cannot use this page")
            return view(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorator


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in (anything else: the home page)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(c in target for c in "\r\n\t"):
        return url_for("web.home")
    return target


# -- pages ------------------------------------------------------------------------------------
@bp.get("/signin")
def signin() -> BaseResponse:
    if identity().authenticated:
        return redirect(safe_next(request.args.get("next")))
    return render("web/signin.html", next=safe_next(request.args.get("next")))


@bp.post("/signin")
def signin_submit() -> BaseResponse:
    target = safe_next(request.form.get("next"))
    token = (request.form.get("token") or "").strip()
    if not token:
        return render("web/signin.html", status=400, next=target,
                      error="Paste one of your API tokens to sign in.")
    try:
        ident = runtime().identities.authenticate(token)
    except Unauthenticated as exc:
        return render("web/signin.html", status=401, next=target,
                      error=f"This token cannot sign you in: {exc.message}.")
    # a new session (and a new CSRF token): nothing from before signing in is carried over
    session.clear()
    session[SESSION_TOKEN] = ident.token_id
    session[SESSION_CSRF] = secrets.token_urlsafe(32)
    session.permanent = True
    g.identity = ident
    flash(f"Signed in as {ident.username}.", "success")
    return redirect(target, code=303)


@bp.get("/signout")
def signout_confirm() -> BaseResponse:
    if not identity().authenticated:
        return redirect(url_for("web.home"))
    return render("web/signout.html")


@bp.post("/signout")
def signout() -> BaseResponse:
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("web.home"), code=303)
