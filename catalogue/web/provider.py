"""The provider area: an organisation's datasets, uploading and editing descriptions with the
validation report per property, publishing and withdrawing, harvest sources and their runs.

Every page needs a signed-in provider (or an admin, who chooses the organisation with
``?organisation_id=``). The views call the same services as the JSON API with the signed-in
identity, so the rules are the API's: a description with violations can be saved as a draft but
not published; another organisation's datasets, sources and runs are "not found" (a provider
never learns that someone else's draft exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from catalogue.errors import CatalogueError, Conflict, NotFound, ValidationError
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import Identity, Role
from catalogue.store.harvest import HarvestRun, HarvestSource
from catalogue.web.auth import signed_in
from catalogue.web.site import bp, error_page, identity, render, runtime

STATUSES = ("draft", "published", "withdrawn")
SEVERITY_ORDER = {"violation": 0, "warning": 1, "info": 2}
#: the formats a provider may choose (the value is sent to the parser as a media type)
UPLOAD_FORMATS = (("", "Detect from the file name or the content"),
                  ("text/turtle", "Turtle"), ("application/ld+json", "JSON-LD"),
                  ("application/rdf+xml", "RDF/XML"), ("application/n-triples", "N-Triples"))
_EXTENSIONS = {".ttl": "text/turtle", ".turtle": "text/turtle", ".jsonld": "application/ld+json",
               ".json": "application/ld+json", ".rdf": "application/rdf+xml",
               ".xml": "application/rdf+xml", ".owl": "application/rdf+xml",
               ".nt": "application/n-triples"}
#: "… on <iri>", "… on _:b0", "… on <iri> (the dct:publisher of <iri>)" in a validation message
_WHERE = re.compile(
    r" on ((?:the \S+ of )*(?:<[^<>\s]*>|_:[\w.-]+)(?: \((?:the \S+ of )+<[^<>\s]*>\))?)(?=$|: )")


def provider_only(identity: Identity) -> bool:
    """Whether the navigation shows the provider area."""
    return identity.authenticated and (identity.is_admin or identity.role == Role.PROVIDER)


# -- presentation ---------------------------------------------------------------------------------
@dataclass
class ReportRow:
    property: str
    severity: str
    message: str
    where: str


@dataclass
class DatasetRow:
    id: str
    title: str
    identifier: str
    status: str
    changed: str
    violations: int
    warnings: int


def title_of(ds: Dataset) -> str:
    titles = ds.title or {}
    return titles.get("en") or next(iter(titles.values()), "") or ds.identifier


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "–"


def report_rows(validation: list[dict[str, Any]] | None) -> list[ReportRow]:
    """A validation report per property: violations first, then warnings, then notes."""
    out = []
    for issue in validation or []:
        message = str(issue.get("message") or "")
        where = issue.get("focus") or issue.get("location") or ""
        if not where and (found := _WHERE.search(message)):
            where = found.group(1)
            message = message[:found.start()] + message[found.end():]
        out.append(ReportRow(property=str(issue.get("path") or "(description)"),
                             severity=str(issue.get("severity") or "warning"),
                             message=message, where=str(where) or "–"))
    out.sort(key=lambda r: (SEVERITY_ORDER.get(r.severity, 3), r.property))
    return out


def counts(validation: list[dict[str, Any]] | None) -> tuple[int, int]:
    issues = validation or []
    return (sum(1 for i in issues if i.get("severity") == "violation"),
            sum(1 for i in issues if i.get("severity") == "warning"))


def dataset_row(ds: Dataset) -> DatasetRow:
    violations, warnings = counts(ds.validation)
    return DatasetRow(id=str(ds.id), title=title_of(ds), identifier=ds.identifier,
                      status=ds.status.value, changed=when(ds.updated_at or ds.created_at),
                      violations=violations, warnings=warnings)


# -- the organisation a page is about -------------------------------------------------------------
def organisation() -> str | None:
    """The signed-in provider's organisation; for admins, the one they chose (or None)."""
    ident = identity()
    if ident.is_admin:
        chosen = (request.values.get("organisation_id") or "").strip()
        return chosen or None
    return ident.organisation_id


def _org_context(org: str | None) -> dict[str, Any]:
    ident = identity()
    organisations = runtime().identities.list_organisations() if ident.is_admin else []
    name = org
    if org:
        try:
            name = runtime().identities.get_organisation(org).name
        except CatalogueError:
            raise NotFound(f"organisation {org!r} not found") from None
    return {"org": org, "org_name": name, "organisations": organisations,
            "is_admin": ident.is_admin}


def owned(dataset_id: str) -> Dataset:
    """A dataset of the signed-in provider's organisation (anything else: not found)."""
    ident = identity()
    ds = runtime().datasets.get(ident, dataset_id)
    if not (ident.is_admin or ident.member_of(ds.organisation_id)):
        raise NotFound(f"dataset {dataset_id!r} not found")
    return ds


def _org_args(org: str | None) -> dict[str, str]:
    return {"organisation_id": org} if org and identity().is_admin else {}


# -- my datasets ----------------------------------------------------------------------------------
@bp.get("/provider")
@signed_in(Role.PROVIDER)
def provider_home() -> BaseResponse:
    org = organisation()
    context = _org_context(org)
    status = request.args.get("status") or ""
    if status and status not in STATUSES:
        status = ""
    groups: dict[str, list[DatasetRow]] = {s: [] for s in STATUSES}
    total = 0
    if org:
        total, items = runtime().datasets.list_for_organisation(identity(), org, limit=1000)
        for ds in items:
            groups.setdefault(ds.status.value, []).append(dataset_row(ds))
    shown = [s for s in STATUSES if not status or s == status]
    return render("web/provider.html", groups=groups, shown=shown, filter_status=status,
                  total=total, org_args=_org_args(org), **context)


# -- upload and edit ------------------------------------------------------------------------------
def _content_type(filename: str | None, chosen: str) -> str | None:
    if chosen in {value for value, _ in UPLOAD_FORMATS if value}:
        return chosen
    if filename and "." in filename:
        return _EXTENSIONS.get("." + filename.rsplit(".", 1)[1].lower())
    return None


def _upload(org: str, dataset_id: str | None) -> dict[str, Any]:
    """Save the posted description; what the form page shows about the outcome."""
    upload = request.files.get("file")
    filename = upload.filename if upload is not None else None
    content = upload.read() if upload is not None and filename else b""
    if not content:
        content = (request.form.get("text") or "").encode()
        filename = None
    if not content.strip():
        return {"error": "Choose a file or paste a description: the upload was empty."}
    raw_status = request.form.get("status", "draft")
    if raw_status not in ("draft", "published"):
        return {"error": "The target status must be draft or published."}
    content_type = _content_type(filename, request.form.get("format", ""))
    try:
        ds, created = runtime().datasets.save_rdf(
            identity(), org, content, content_type, DatasetStatus(raw_status), dataset_id)
    except ValidationError as exc:
        from catalogue.dcat.formats import FORMAT_NAMES, RdfError

        outcome: dict[str, Any] = {"error": exc.message, "status_code": 400}
        if isinstance(exc, RdfError):
            where = [f"{FORMAT_NAMES.get(exc.format or '', exc.format)}" if exc.format else "",
                     f"line {exc.line}" if exc.line is not None else "",
                     f"column {exc.column}" if exc.column is not None else ""]
            outcome["parse_error"] = True
            outcome["where"] = ", ".join(w for w in where if w)
        elif isinstance(exc.details, list):
            outcome["report"] = report_rows(exc.details)
            outcome["status_code"] = 422
        return outcome
    violations, warnings = counts(ds.validation)
    return {"saved": ds, "created": created, "report": report_rows(ds.validation),
            "violations": violations, "warnings": warnings}


def _form_context(org: str | None, outcome: dict[str, Any]) -> dict[str, Any]:
    return {"formats": UPLOAD_FORMATS, "chosen_status": request.form.get("status", "draft"),
            "chosen_format": request.form.get("format", ""),
            "text": request.form.get("text", "") if outcome.get("error") else "",
            "org_args": _org_args(org), **outcome}


@bp.route("/provider/upload", methods=["GET", "POST"])
@signed_in(Role.PROVIDER)
def provider_upload() -> BaseResponse:
    org = organisation()
    context = _org_context(org)
    outcome: dict[str, Any] = {}
    if request.method == "POST":
        if not org:
            outcome = {"error": "Choose the organisation the dataset belongs to."}
        else:
            outcome = _upload(org, None)
    status_code = int(outcome.pop("status_code", 200))
    return render("web/provider_upload.html", status=status_code,
                  **_form_context(org, outcome), **context)


@bp.get("/provider/datasets/<dataset_id>")
@signed_in(Role.PROVIDER)
def provider_dataset(dataset_id: str) -> BaseResponse:
    ds = owned(dataset_id)
    return _dataset_page(ds, {})


def _dataset_page(ds: Dataset, outcome: dict[str, Any]) -> BaseResponse:
    status_code = int(outcome.pop("status_code", 200))
    violations, warnings = counts(ds.validation)
    return render("web/provider_dataset.html", status=status_code, ds=ds, row=dataset_row(ds),
                  stored_report=report_rows(ds.validation), stored_violations=violations,
                  stored_warnings=warnings, **_form_context(ds.organisation_id, outcome),
                  **_org_context(ds.organisation_id))


@bp.post("/provider/datasets/<dataset_id>")
@signed_in(Role.PROVIDER)
def provider_replace(dataset_id: str) -> BaseResponse:
    ds = owned(dataset_id)
    outcome = _upload(ds.organisation_id, str(ds.id))
    if "saved" in outcome:
        ds = outcome["saved"]
    return _dataset_page(ds, outcome)


def _set_status(dataset_id: str, status: DatasetStatus, done: str) -> BaseResponse:
    ds = owned(dataset_id)
    try:
        runtime().datasets.set_status(identity(), str(ds.id), status)
    except ValidationError as exc:
        return _dataset_page(ds, {"error": exc.message, "status_code": 422,
                                  "report": report_rows(ds.validation)})
    flash(f"“{title_of(ds)}” {done}.", "success")
    return redirect(url_for("web.provider_dataset", dataset_id=dataset_id), code=303)


@bp.post("/provider/datasets/<dataset_id>/publish")
@signed_in(Role.PROVIDER)
def provider_publish(dataset_id: str) -> BaseResponse:
    return _set_status(dataset_id, DatasetStatus.PUBLISHED, "is published")


@bp.post("/provider/datasets/<dataset_id>/withdraw")
@signed_in(Role.PROVIDER)
def provider_withdraw(dataset_id: str) -> BaseResponse:
    return _set_status(dataset_id, DatasetStatus.WITHDRAWN, "is withdrawn")


# -- harvest sources ------------------------------------------------------------------------------
@dataclass
class SourceRow:
    source: HarvestSource
    last: HarvestRun | None


@bp.get("/provider/sources")
@signed_in(Role.PROVIDER)
def provider_sources() -> BaseResponse:
    org = organisation()
    context = _org_context(org)
    rows: list[SourceRow] = []
    if org:
        harvest = runtime().harvest
        for source in harvest.list_sources(identity(), org):
            runs = harvest.list_runs(identity(), source.id)
            rows.append(SourceRow(source, runs[0] if runs else None))
    return render("web/provider_sources.html", rows=rows, org_args=_org_args(org), when=when,
                  **context)


def _source_form() -> dict[str, Any]:
    """The source form's fields, as posted."""
    return {"url": (request.form.get("url") or "").strip(),
            "name": (request.form.get("name") or "").strip(),
            "schedule": (request.form.get("schedule") or "").strip(),
            "validation_mode": request.form.get("validation_mode", "lenient"),
            "allow_private": request.form.get("allow_private") == "yes"}


@bp.route("/provider/sources/new", methods=["GET", "POST"])
@signed_in(Role.PROVIDER)
def provider_new_source() -> BaseResponse:
    org = organisation()
    context = _org_context(org)
    error = None
    form = {"url": "", "name": "", "schedule": "", "validation_mode": "lenient",
            "allow_private": False}
    if request.method == "POST":
        form = _source_form()
        if not org:
            error = "Choose the organisation the source belongs to."
        elif not form["url"]:
            error = "Give the URL of the DCAT catalogue to harvest."
        else:
            try:
                created = runtime().harvest.register(identity(), HarvestSource(
                    id="", organisation_id=org, kind="dcat", url=str(form["url"]),
                    name=str(form["name"]), schedule=str(form["schedule"]) or None,
                    validation_mode=str(form["validation_mode"]),
                    allow_private=bool(form["allow_private"])))
            except CatalogueError as exc:
                error = exc.message
            else:
                flash("The source is registered.", "success")
                return redirect(url_for("web.provider_source", source_id=created.id), code=303)
    return render("web/provider_source_new.html", status=400 if error else 200, error=error,
                  form=form, org_args=_org_args(org), **context)


@bp.get("/provider/sources/<source_id>")
@signed_in(Role.PROVIDER)
def provider_source(source_id: str) -> BaseResponse:
    harvest = runtime().harvest
    source = harvest.get_source(identity(), source_id)
    runs = harvest.list_runs(identity(), source_id)
    return render("web/provider_source.html", source=source, runs=runs, when=when,
                  **_org_context(source.organisation_id))


@bp.post("/provider/sources/<source_id>/run")
@signed_in(Role.PROVIDER)
def provider_run_source(source_id: str) -> BaseResponse:
    run_id = runtime().harvest.start_source(identity(), source_id)
    flash("The run has started; reload this page to follow it.", "success")
    return redirect(url_for("web.provider_run", run_id=run_id), code=303)


@bp.route("/provider/sources/<source_id>/edit", methods=["GET", "POST"])
@signed_in(Role.PROVIDER)
def provider_edit_source(source_id: str) -> BaseResponse:
    harvest = runtime().harvest
    source = harvest.get_source(identity(), source_id)
    error = None
    form = {"url": source.url, "name": source.name, "schedule": source.schedule or "",
            "validation_mode": source.validation_mode, "allow_private": source.allow_private}
    if request.method == "POST":
        form = _source_form()
        changes: dict[str, Any] = {k: form[k] for k in ("url", "name", "schedule",
                                                        "validation_mode")}
        if identity().is_admin:
            changes["allow_private"] = form["allow_private"]
        try:
            harvest.update_source(identity(), source_id, changes)
        except CatalogueError as exc:
            error = exc.message
        else:
            flash("The source is saved.", "success")
            return redirect(url_for("web.provider_source", source_id=source_id), code=303)
    context = _org_context(source.organisation_id)
    return render("web/provider_source_new.html", status=400 if error else 200, error=error,
                  form=form, editing=source, org_args=_org_args(source.organisation_id),
                  **context)


@bp.post("/provider/sources/<source_id>/schedule")
@signed_in(Role.PROVIDER)
def provider_pause_source(source_id: str) -> BaseResponse:
    enabled = request.form.get("enabled") == "yes"
    try:
        runtime().harvest.update_source(identity(), source_id, {"enabled": enabled})
    except Conflict as exc:
        flash(exc.message, "error")
    else:
        flash("The schedule is resumed." if enabled else
              "The schedule is paused; the source can still be run now.", "success")
    return redirect(url_for("web.provider_source", source_id=source_id), code=303)


@bp.post("/provider/sources/<source_id>/delete")
@signed_in(Role.PROVIDER)
def provider_delete_source(source_id: str) -> BaseResponse:
    withdraw = request.form.get("withdraw_datasets") == "yes"
    harvest = runtime().harvest
    org = harvest.get_source(identity(), source_id).organisation_id
    try:
        done = harvest.delete_source(identity(), source_id, withdraw_datasets=withdraw)
    except Conflict as exc:
        flash(exc.message, "error")
        return redirect(url_for("web.provider_source", source_id=source_id), code=303)
    flash(f"The source is deleted: {done['datasets_withdrawn']} dataset(s) withdrawn, "
          f"{done['datasets_released']} left published with no source. Its runs are kept.",
          "success")
    args: dict[str, Any] = _org_args(org)
    return redirect(url_for("web.provider_sources", **args), code=303)


@bp.get("/provider/runs/<run_id>")
@signed_in(Role.PROVIDER)
def provider_run(run_id: str) -> BaseResponse:
    run, errors = runtime().harvest.get_run(identity(), run_id)
    return render("web/provider_run.html", run=run, errors=errors, when=when,
                  **_org_context(run.organisation_id))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> BaseResponse:
    limit = runtime().config.max_request_bytes
    return error_page(413, f"the upload is larger than the limit of {limit / 1_048_576:.0f} MB: "
                           "split the document or ask an administrator to harvest it instead")
