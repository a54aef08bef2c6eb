"""The admin area: organisations, users, API tokens, cohort privacy budgets and the cohort
question audit log.

Every page needs a signed-in admin (anonymous users are sent to sign in, other roles get 403).
The views call the same services as the JSON API with the signed-in identity, so the services'
own rules and audit records apply; a service's refusal becomes a message on the page. An issued
token's secret is shown once, on the page answering the POST that created it (never stored,
never shown again; the page is not cached).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from catalogue.errors import CatalogueError, ValidationError
from catalogue.model.identity import Identity, Organisation, Role, User
from catalogue.schemas import OrganisationSchema, TokenRequestSchema, UserSchema, load
from catalogue.web.auth import signed_in
from catalogue.web.site import bp, identity, render, runtime

ROLES = tuple(r.value for r in Role)
#: entries of the cohort audit log per page
AUDIT_PAGE = 50
#: above this many organisations the list does not count each one's datasets
COUNT_DATASETS_UP_TO = 200
SECTIONS = (("admin_organisations", "Organisations"), ("admin_users", "Users"),
            ("admin_tokens", "Tokens"), ("admin_budgets", "Budgets"),
            ("admin_audit", "Audit log"))


def admin_only(ident: Identity) -> bool:
    """Whether the navigation shows the admin area."""
    return ident.authenticated and ident.is_admin


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "–"


def message_of(exc: CatalogueError) -> str:
    """A service error as one sentence for the page (field messages included)."""
    text = exc.message
    if isinstance(exc.details, dict):
        parts = []
        for field, messages in exc.details.items():
            said = " ".join(messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{field.replace('_', ' ')}: {said}")
        if parts:
            text = f"{text} ({'; '.join(parts)})"
    return text[:1].upper() + text[1:]


def _text(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _render(template: str, section: str, status: int = 200, **context: Any) -> BaseResponse:
    return render(template, status=status, section=section, sections=SECTIONS, when=when,
                  **context)


# -- overview ---------------------------------------------------------------------------------
@bp.get("/admin")
@signed_in(Role.ADMIN)
def admin_home() -> BaseResponse:
    ident = identity()
    ids = runtime().identities
    users = ids.list_users(ident)
    tokens = ids.list_tokens(ident)
    summary = {
        "organisations": len(ids.list_organisations()),
        "users": len(users), "active_users": sum(1 for u in users if u.active),
        "tokens": sum(1 for t in tokens if t.revoked_at is None),
        "spenders": len(runtime().cohorts.budgets(ident)),
    }
    return _render("web/admin.html", "", summary=summary)


# -- organisations ----------------------------------------------------------------------------
def _organisations_page(error: str | None = None, form: dict[str, str] | None = None,
                        status: int = 200) -> BaseResponse:
    ident = identity()
    orgs = runtime().identities.list_organisations()
    datasets: dict[str, int] = {}
    if len(orgs) <= COUNT_DATASETS_UP_TO:
        for org in orgs:
            datasets[org.id], _ = runtime().datasets.list_for_organisation(ident, org.id,
                                                                           limit=1)
    return _render("web/admin_organisations.html", "admin_organisations", status=status,
                   organisations=orgs, datasets=datasets, error=error,
                   form=form or {"id": "", "name": "", "country": "", "homepage": ""})


@bp.get("/admin/organisations")
@signed_in(Role.ADMIN)
def admin_organisations() -> BaseResponse:
    return _organisations_page()


@bp.post("/admin/organisations")
@signed_in(Role.ADMIN)
def admin_organisations_create() -> BaseResponse:
    form = {k: _text(k) for k in ("id", "name", "country", "homepage")}
    try:
        data = load(OrganisationSchema(), {k: v or None for k, v in form.items()})
        org = runtime().identities.create_organisation(identity(), Organisation(**data))
    except CatalogueError as exc:
        return _organisations_page(message_of(exc), form, exc.status)
    flash(f"Organisation “{org.name}” ({org.id}) is created.", "success")
    return redirect(url_for("web.admin_organisations"), code=303)


# -- users ------------------------------------------------------------------------------------
def _users_page(error: str | None = None, form: dict[str, str] | None = None,
                status: int = 200) -> BaseResponse:
    ident = identity()
    return _render("web/admin_users.html", "admin_users", status=status,
                   users=runtime().identities.list_users(ident),
                   organisations=runtime().identities.list_organisations(), roles=ROLES,
                   error=error, form=form or {"username": "", "role": "researcher",
                                              "organisation_id": "", "display_name": "",
                                              "email": ""})


@bp.get("/admin/users")
@signed_in(Role.ADMIN)
def admin_users() -> BaseResponse:
    return _users_page()


@bp.post("/admin/users")
@signed_in(Role.ADMIN)
def admin_users_create() -> BaseResponse:
    form = {k: _text(k) for k in ("username", "role", "organisation_id", "display_name",
                                  "email")}
    try:
        data = load(UserSchema(), {k: v or None for k, v in form.items()})
        user = runtime().identities.create_user(identity(), User(
            id="", username=data["username"], role=Role(data["role"]),
            organisation_id=data["organisation_id"], display_name=data["display_name"],
            email=data["email"]))
    except CatalogueError as exc:
        return _users_page(message_of(exc), form, exc.status)
    flash(f"User {user.username} ({user.role.value}) is created. Issue them a token so that "
          "they can sign in.", "success")
    return redirect(url_for("web.admin_users"), code=303)


@bp.post("/admin/users/<username>/active")
@signed_in(Role.ADMIN)
def admin_user_active(username: str) -> BaseResponse:
    active = request.form.get("active") == "yes"
    if not active and username == identity().username:
        return _users_page("You cannot deactivate your own account.", status=400)
    try:
        runtime().identities.set_user_active(identity(), username, active)
    except CatalogueError as exc:
        return _users_page(message_of(exc), status=exc.status)
    flash(f"User {username} is {'reactivated' if active else 'deactivated'}"
          f"{'' if active else ': their tokens and sessions stop working at once'}.", "success")
    return redirect(url_for("web.admin_users"), code=303)


# -- tokens -----------------------------------------------------------------------------------
def _tokens_page(error: str | None = None, form: dict[str, str] | None = None,
                 status: int = 200) -> BaseResponse:
    ident = identity()
    ids = runtime().identities
    owner = (request.args.get("username") or "").strip()
    listing_error = None
    try:
        tokens = ids.list_tokens(ident, owner or None)
    except CatalogueError as exc:
        tokens, listing_error = [], message_of(exc)
    tokens.sort(key=lambda t: t.created_at, reverse=True)
    users = ids.list_users(ident)
    return _render("web/admin_tokens.html", "admin_tokens", status=status, tokens=tokens,
                   owner=owner, users=users, error=error, listing_error=listing_error,
                   form=form or {"username": owner, "name": "", "ttl_days": ""},
                   default_ttl=ids.token_ttl_days)


@bp.get("/admin/tokens")
@signed_in(Role.ADMIN)
def admin_tokens() -> BaseResponse:
    return _tokens_page()


@bp.post("/admin/tokens")
@signed_in(Role.ADMIN)
def admin_tokens_issue() -> BaseResponse:
    form = {k: _text(k) for k in ("username", "name", "ttl_days")}
    try:
        if not form["username"]:
            raise ValidationError("choose the user the token is for")
        data = load(TokenRequestSchema(), {
            "username": form["username"], "name": form["name"],
            "ttl_days": form["ttl_days"] or None})
        issued = runtime().identities.issue_token(identity(), data["username"], data["name"],
                                                  data["ttl_days"])
    except CatalogueError as exc:
        return _tokens_page(message_of(exc), form, exc.status)
    # the only time the secret exists outside its hash: this response, never cached
    response = _render("web/admin_token_issued.html", "admin_tokens", issued=issued,
                       owner=data["username"])
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/admin/tokens/<token_id>/revoke")
@signed_in(Role.ADMIN)
def admin_token_revoke(token_id: str) -> BaseResponse:
    try:
        token = runtime().identities.revoke_token(identity(), token_id)
    except CatalogueError as exc:
        return _tokens_page(message_of(exc), status=exc.status)
    flash(f"Token {token.id} is revoked: it stops working at once.", "success")
    back = _text("username") or None
    return redirect(url_for("web.admin_tokens", username=back), code=303)


# -- budgets ----------------------------------------------------------------------------------
def _budgets_page(error: str | None = None, form: dict[str, str] | None = None,
                  status: int = 200) -> BaseResponse:
    cohorts = runtime().cohorts
    rows = cohorts.budgets(identity())
    organisations: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["organisation_id"] and row["organisation"]:
            organisations[row["organisation_id"]] = row["organisation"]
    policy = cohorts.policy
    return _render("web/admin_budgets.html", "admin_budgets", status=status, rows=rows,
                   organisations=sorted(organisations.items()), policy=policy, error=error,
                   form=form or {"scope": "user", "username": "", "organisation_id": "",
                                 "reason": ""})


@bp.get("/admin/budgets")
@signed_in(Role.ADMIN)
def admin_budgets() -> BaseResponse:
    return _budgets_page()


@bp.post("/admin/budgets/reset")
@signed_in(Role.ADMIN)
def admin_budgets_reset() -> BaseResponse:
    form = {k: _text(k) for k in ("scope", "username", "organisation_id", "reason")}
    scope = form["scope"] if form["scope"] in ("user", "organisation") else ""
    try:
        if not form["reason"]:
            raise ValidationError("give the reason for the reset (it is kept in the audit log)")
        if len(form["reason"]) > 500:
            raise ValidationError("the reason is too long (500 characters at most)")
        if scope == "user" and form["username"]:
            runtime().cohorts.reset(identity(), username=form["username"],
                                    reason=form["reason"])
            done = f"researcher {form['username']}"
        elif scope == "organisation" and form["organisation_id"]:
            runtime().cohorts.reset(identity(), organisation_id=form["organisation_id"],
                                    reason=form["reason"])
            done = f"organisation {form['organisation_id']}"
        else:
            raise ValidationError("choose a researcher (username) or an organisation")
    except CatalogueError as exc:
        return _budgets_page(message_of(exc), form, exc.status)
    flash(f"The privacy budget of {done} starts afresh (the reset is audited).", "success")
    return redirect(url_for("web.admin_budgets"), code=303)


# -- audit log of count questions -------------------------------------------------------------
@bp.get("/admin/audit")
@signed_in(Role.ADMIN)
def admin_audit() -> BaseResponse:
    username = (request.args.get("username") or "").strip()
    organisation_id = (request.args.get("organisation_id") or "").strip()
    raw_before = request.args.get("before_id") or ""
    before_id = int(raw_before) if raw_before.isdigit() and len(raw_before) < 19 else None
    rows = runtime().cohorts.queries(identity(), limit=AUDIT_PAGE + 1, before_id=before_id,
                                     username=username or None,
                                     organisation_id=organisation_id or None)
    filters: dict[str, Any] = {k: v for k, v in (("username", username),
                                 ("organisation_id", organisation_id)) if v}
    older = None
    if len(rows) > AUDIT_PAGE:
        rows = rows[:AUDIT_PAGE]
        older = url_for("web.admin_audit", before_id=rows[-1]["id"], **filters)
    # who, when, outcome, cost and how much was released: never the question's numbers
    entries = [{"id": r["id"], "at": when(r["at"]), "username": r["username"],
                "organisation_id": r["organisation_id"], "outcome": r["outcome"],
                "epsilon": r["epsilon"], "cells": r["cells"], "released": r["released"],
                "question_hash": (r["question_hash"] or "")[:12], "message": r["message"]}
               for r in rows]
    return _render("web/admin_audit.html", "admin_audit", entries=entries, filters=filters,
                   older=older, newest=url_for("web.admin_audit", **filters) if before_id
                   else None, username=username, organisation_id=organisation_id)
