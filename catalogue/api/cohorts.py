"""Cohort-feasibility counts (researchers) and their budgets and audit log (admins)."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, jsonify, request

from catalogue.api.routing import identity, int_arg, json_body, op, runtime
from catalogue.errors import UnsupportedMediaType, ValidationError
from catalogue.model.identity import Role
from catalogue.services.permissions import require_role

bp = Blueprint("api_cohorts", __name__, url_prefix="/api/v1/cohorts")


@op(bp, "POST", "/count",
    "Count subjects and studies matching criteria, per group, with disclosure control",
    tag="cohorts", auth="token", errors=(400, 401, 403, 429, 503))
def count() -> Response:
    require_role(identity(), Role.RESEARCHER)  # before reading anything
    try:
        body = json_body()
    except (ValidationError, UnsupportedMediaType) as exc:  # audited like any refused question
        runtime().cohorts.refused(identity(), exc.message)
        raise
    cohorts = runtime().cohorts
    answer, settle = cohorts.answer(identity(), body)
    try:
        # orjson: an answer grouped by dataset has thousands of numbers (the standard encoder
        # took about 5 ms of a count); keys sorted like every other answer
        response = Response(orjson.dumps(answer, option=orjson.OPT_SORT_KEYS),
                            mimetype="application/json")
    except BaseException:
        settle()
        raise
    # the ledger entry (charged already) is settled once the answer is sent, not before, and
    # not in this thread (the connection's next request is not held up by it)
    response.call_on_close(lambda: cohorts.settle_later(settle))
    return response


@op(bp, "GET", "/budget", "Your remaining privacy budget (researchers)", tag="cohorts",
    auth="token", errors=(401, 403))
def my_budget() -> Response:
    return jsonify(runtime().cohorts.budget(identity()))


@op(bp, "GET", "/budgets", "Privacy budgets of researchers active in the window", tag="cohorts",
    auth="admin", errors=(401, 403))
def budgets() -> Response:
    return jsonify(runtime().cohorts.budgets(identity()))


@op(bp, "POST", "/budgets/reset", "Reset a researcher's or an organisation's budget",
    tag="cohorts", auth="admin", errors=(400, 401, 403, 404))
def reset_budget() -> Response:
    body = json_body()
    if not isinstance(body, dict) or set(body) - {"username", "organisation_id", "reason"}:
        raise ValidationError("give username or organisation_id, and optionally reason")
    values = [body.get(k) for k in ("username", "organisation_id", "reason")]
    if not all(v is None or isinstance(v, str) for v in values):
        raise ValidationError("username, organisation_id and reason are strings")
    runtime().cohorts.reset(identity(), username=values[0], organisation_id=values[1],
                            reason=values[2])
    return jsonify({"reset": True})


@op(bp, "GET", "/queries", "Audit log of count questions, newest first", tag="cohorts",
    auth="admin", query=(("limit", "integer", "1-1000, default 100"),
                         ("before_id", "integer", "page: entries older than this id"),
                         ("username", "string", "only this researcher"),
                         ("organisation_id", "string", "only this organisation")),
    errors=(401, 403))
def queries() -> Response:
    before = request.args.get("before_id")
    rows = runtime().cohorts.queries(
        identity(), limit=int_arg("limit", 100, 1, 1000),
        before_id=int_arg("before_id", 0, 0, 2**62) if before else None,
        username=request.args.get("username") or None,
        organisation_id=request.args.get("organisation_id") or None)
    for row in rows:
        row["at"] = row["at"].isoformat()
    return jsonify(rows)
