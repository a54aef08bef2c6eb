"""Harvest sources and runs (providers for their organisation; admins for all)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from catalogue.api.routing import identity, json_body, op, runtime
from catalogue.schemas import (
    HarvestRunSchema,
    HarvestSourceSchema,
    HarvestSourceUpdateSchema,
    RecordErrorSchema,
    RunRequestSchema,
    SourceDeletedSchema,
    load,
)
from catalogue.store.harvest import HarvestSource

bp = Blueprint("api_harvest", __name__, url_prefix="/api/v1/harvest")
_source = HarvestSourceSchema()
_run = HarvestRunSchema()
_error = RecordErrorSchema()


@op(
    bp,
    "GET",
    "/sources",
    "Harvest sources (yours; admins: all)",
    tag="harvest",
    auth="token",
    response_schema=HarvestSourceSchema(many=True),
    errors=(401, 403),
)
def list_sources() -> Response:
    sources = runtime().harvest.list_sources(
        identity(), request.args.get("organisation_id") or None
    )
    return jsonify(_source.dump(sources, many=True))


@op(
    bp,
    "POST",
    "/sources",
    "Register a harvest source",
    tag="harvest",
    auth="token",
    request_schema=HarvestSourceSchema,
    response_schema=HarvestSourceSchema,
    status=201,
    errors=(400, 401, 403),
)
def create_source() -> Response:
    data = load(_source, json_body())
    created = runtime().harvest.register(identity(), HarvestSource(id="", **data))
    response = jsonify(_source.dump(created))
    response.status_code = 201
    return response


@op(
    bp,
    "GET",
    "/sources/{source_id}",
    "One harvest source",
    tag="harvest",
    auth="token",
    response_schema=HarvestSourceSchema,
    errors=(401, 404),
)
def get_source(source_id: str) -> Response:
    return jsonify(_source.dump(runtime().harvest.get_source(identity(), source_id)))


@op(
    bp,
    "PATCH",
    "/sources/{source_id}",
    "Change a source: name, URL, schedule, validation mode, configuration, enabled (false "
    "pauses its schedule), private network allowance (admins); 409 while it runs",
    tag="harvest",
    auth="token",
    request_schema=HarvestSourceUpdateSchema,
    response_schema=HarvestSourceSchema,
    errors=(400, 401, 403, 404, 409),
)
def update_source(source_id: str) -> Response:
    changes = load(HarvestSourceUpdateSchema(), json_body())
    updated = runtime().harvest.update_source(identity(), source_id, changes)
    return jsonify(_source.dump(updated))


@op(
    bp,
    "DELETE",
    "/sources/{source_id}",
    "Delete a source (its run history is kept); its datasets stay published with no source, "
    "or are withdrawn with ?withdraw_datasets=true; 409 while it runs",
    tag="harvest",
    auth="token",
    response_schema=SourceDeletedSchema,
    query=(("withdraw_datasets", "boolean", "Withdraw the source's datasets too"),),
    errors=(401, 403, 404, 409),
)
def delete_source(source_id: str) -> Response:
    withdraw = request.args.get("withdraw_datasets", "").lower() in ("1", "true", "yes")
    return jsonify(runtime().harvest.delete_source(identity(), source_id,
                                                   withdraw_datasets=withdraw))


@op(
    bp,
    "POST",
    "/sources/{source_id}/run",
    "Run a source now: 202 with the run id (poll /runs/{run_id}); ?wait=true answers 200 "
    "with the finished run's counts and errors",
    tag="harvest",
    auth="token",
    request_schema=RunRequestSchema,
    response_schema=HarvestRunSchema,
    status=202,
    query=(("wait", "boolean", "Wait for the run to finish"),),
    errors=(401, 403, 404, 409),
)
def run_source(source_id: str) -> Response:
    data = load(RunRequestSchema(), json_body() if request.data else {})
    if request.args.get("wait", "").lower() in ("1", "true", "yes"):
        report = runtime().harvest.run_source(identity(), source_id, dry_run=data["dry_run"])
        return jsonify(report.as_dict())
    run_id = runtime().harvest.start_source(identity(), source_id, dry_run=data["dry_run"])
    response = jsonify({"run_id": run_id, "status": "running",
                        "href": f"/api/v1/harvest/runs/{run_id}"})
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/harvest/runs/{run_id}"
    return response


@op(
    bp,
    "GET",
    "/sources/{source_id}/runs",
    "Run history of a source",
    tag="harvest",
    auth="token",
    response_schema=HarvestRunSchema(many=True),
    errors=(401, 404),
)
def list_runs(source_id: str) -> Response:
    return jsonify(_run.dump(runtime().harvest.list_runs(identity(), source_id), many=True))


@op(
    bp,
    "GET",
    "/runs/{run_id}",
    "One run with its per-record errors",
    tag="harvest",
    auth="token",
    response_schema=HarvestRunSchema,
    errors=(401, 404),
)
def get_run(run_id: str) -> Response:
    run, errors = runtime().harvest.get_run(identity(), run_id)
    return jsonify({**_run.dump(run), "errors": _error.dump(errors, many=True)})
