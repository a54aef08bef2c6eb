"""The cohort builder: compose criteria in a form, count with disclosure control, export as CSV.

Researchers only (anonymous users are sent to sign in; providers and admins get 403, as on
``POST /api/v1/cohorts/count``). The form (a plain POST with the CSRF token: a count spends
privacy budget, so it is never a GET) is turned into a question of the JSON API's format by
:func:`build_question` (pure) and answered by :meth:`CohortService.count` with the signed-in
identity: the same canonical question, noise, disclosure control and budget as the API. The
CSV export posts the same form again: the same canonical question on the same data version is a
repeat, answered with the same numbers and charged nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Response, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from catalogue.cohorts.criteria import GROUP_DIMENSIONS, SEXES
from catalogue.errors import TooManyRequests, ValidationError
from catalogue.model.identity import Identity, Role
from catalogue.ontology import get_vocabulary
from catalogue.search.mappings import load_definition
from catalogue.services.permissions import require_role
from catalogue.store.datasets import DatasetRepository
from catalogue.web import labels
from catalogue.web.auth import signed_in
from catalogue.web.site import bp, identity, render, runtime

CONDITION_INPUTS = 3
EXCLUDE_INPUTS = 2
#: modalities offered first (the rest of the vocabulary is folded under "more")
COMMON_MODALITIES = ("CT", "MR", "PT", "MG", "US", "NM", "CR", "DX", "XA", "RF", "SM",
                     "RTIMAGE")
DIMENSION_LABELS = {"dataset": "Dataset", "provider": "Provider", "country": "Country",
                    "sex": "Sex", "modality": "Imaging modality", "body_part": "Body part",
                    "age_band": "Age at study"}
CHART_BARS = 25  # bars drawn at most (released groups first)
TABLE_ROWS = 50  # above this, groups below the threshold are folded under the table
CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_SPLIT = re.compile(r"[\s,;]+")


# -- the form ---------------------------------------------------------------------------------
@dataclass
class CohortForm:
    """The builder's fields as typed (re-displayed as they were)."""

    conditions: list[str] = field(default_factory=list)
    match: str = "all"  # "all" or "any" of the conditions
    exclude: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    sexes: list[str] = field(default_factory=list)
    age_from: str = ""
    age_to: str = ""
    period_from: str = ""
    period_to: str = ""
    datasets: str = ""
    providers: str = ""
    countries: str = ""
    group_by: list[str] = field(default_factory=lambda: ["dataset"])

    def fields(self) -> list[tuple[str, str]]:
        """The form as (name, value) pairs: hidden inputs that post it again (CSV export)."""
        out: list[tuple[str, str]] = [("condition", c) for c in self.conditions]
        out.append(("match", self.match))
        out += [("exclude", c) for c in self.exclude]
        out += [("modality", m) for m in self.modalities]
        out += [("body_part", b) for b in self.body_parts]
        out += [("sex", s) for s in self.sexes]
        for name in ("age_from", "age_to", "period_from", "period_to", "datasets",
                     "providers", "countries"):
            value = getattr(self, name)
            if value:
                out.append((name, value))
        for n, dim in enumerate(self.group_by, 1):
            out.append((f"group_by_{n}", dim))
        return out


def _texts(data: MultiDict[str, str], name: str, limit: int) -> list[str]:
    return [v.strip()[:200] for v in data.getlist(name) if v and v.strip()][:limit]


def parse_form(data: MultiDict[str, str]) -> CohortForm:
    """The builder's fields from a request's form (or query string); nothing is checked here
    beyond lengths: :func:`build_question` and the service refuse what is wrong."""
    def text(name: str) -> str:
        return str(data.get(name) or "").strip()[:500]

    group_by = [text(f"group_by_{n}") for n in (1, 2)]
    if not any(name.startswith("group_by_") for name in data):
        group_by = ["dataset"]  # a fresh form: per dataset
    return CohortForm(
        conditions=_texts(data, "condition", 50),
        match="any" if text("match") == "any" else "all",
        exclude=_texts(data, "exclude", 50),
        modalities=_texts(data, "modality", 100),
        body_parts=_texts(data, "body_part", 100),
        sexes=_texts(data, "sex", 10),
        age_from=text("age_from"), age_to=text("age_to"),
        period_from=text("period_from"), period_to=text("period_to"),
        datasets=text("datasets"), providers=text("providers"), countries=text("countries"),
        group_by=list(dict.fromkeys(g for g in group_by if g)),
    )


def concept_value(vocabulary: str, text: str) -> str:
    """A picked concept's id: from an id, code, IRI, "Label (id)" or a label in any language
    (matched without case); anything else is kept as typed, for the service to refuse with
    its message."""
    vocab = get_vocabulary(vocabulary)
    for candidate in (text, *re.findall(r"\(([^()]+)\)\s*$", text)):  # "Label (snomed:1)"
        concept = vocab.resolve(candidate.strip())
        if concept is not None:
            return concept.id
    folded = text.casefold()
    for concept in vocab.concepts():
        names = [*concept.labels.values(), *(a for alts in concept.alt_labels.values()
                                             for a in alts)]
        if any(name.casefold() == folded for name in names):
            return concept.id
    return text


def _years(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationError(f"{what}: {value!r} is not a whole number of years") from None


def build_question(form: CohortForm) -> dict[str, Any]:
    """The question (the format of ``POST /api/v1/cohorts/count``) that the form asks.

    The conditions are matched all or any; "none of" excludes subjects with any of its
    conditions; modality, body part, age at study and period describe ONE imaging study (e.g.
    "a chest CT at 50–70"); sex, dataset, provider and country restrict the subjects."""
    members: list[dict[str, Any]] = []
    conditions = [concept_value("conditions", c) for c in form.conditions]
    if conditions:
        if form.match == "any" or len(conditions) == 1:
            members.append({"condition": conditions})
        else:
            members.append({"all_of": [{"condition": [c]} for c in conditions]})
    study: dict[str, Any] = {}
    if form.modalities:
        study["modality"] = list(form.modalities)
    if form.body_parts:
        study["body_part"] = list(form.body_parts)
    age: dict[str, int] = {}
    if form.age_from:
        age["gte"] = _years(form.age_from, "Age at study from")
    if form.age_to:
        age["lte"] = _years(form.age_to, "Age at study to")
    if age:
        study["age"] = age
    period = {k: v for k, v in (("from", form.period_from), ("to", form.period_to)) if v}
    if period:
        study["period"] = period
    if study:
        members.append({"study": study})
    if form.sexes:
        members.append({"sex": list(form.sexes)})
    for key, text in (("dataset", form.datasets), ("provider", form.providers),
                      ("country", form.countries)):
        values = [v for v in _SPLIT.split(text) if v]
        if values:
            members.append({key: values})
    excluded = [concept_value("conditions", c) for c in form.exclude]
    if excluded:
        members.append({"none_of": [{"condition": excluded}]})
    return {"criteria": {"all_of": members}, "group_by": list(form.group_by)}


# -- the answer -------------------------------------------------------------------------------
@dataclass
class Label:
    text: str
    code: str
    href: str | None = None


@dataclass
class ResultRow:
    labels: list[Label]
    subjects: dict[str, Any]
    studies: dict[str, Any]


@dataclass
class Bar:  # what the ``bar_chart`` macro draws
    label: str
    display: str
    width: float
    suppressed: bool


@dataclass
class Chart:
    id: str
    caption: str
    dimension: str
    bars: list[Bar]
    hidden: int = 0  # groups below the threshold that are not drawn


@dataclass
class Result:
    answer: dict[str, Any]
    dimensions: list[str]
    rows: list[ResultRow]  # the table: groups with released subjects first
    folded: list[ResultRow]  # groups below the threshold, shown under the table when many
    chart: Chart | None
    floor: int


class Namer:
    """Labels of group values: dataset titles, provider names, vocabulary labels."""

    def __init__(self, answer: dict[str, Any]) -> None:
        ids = sorted({g["dataset"] for g in answer.get("groups", []) if "dataset" in g})
        self.datasets: dict[str, str] = {}
        if ids:
            with runtime().database.transaction() as conn:
                self.datasets = {str(d.id): d.label()
                                 for d in DatasetRepository(conn).get_many(ids)}
        self.providers: dict[str, str] = {}
        if "provider" in answer.get("group_by", []):
            self.providers = {o.id: o.name for o in runtime().identities.list_organisations()}

    def __call__(self, dim: str, value: str) -> Label:
        if dim == "dataset":
            return Label(self.datasets.get(value, value), value,
                         url_for("web.dataset", dataset_id=value))
        if dim == "provider":
            return Label(self.providers.get(value, value), value)
        if dim == "country":
            return Label(labels.country(value), value)
        if dim == "sex":
            return Label(labels.sex(value), value)
        if dim == "age_band":
            step = load_definition("subjects").fields["studies.age_band"].bin or 5
            return Label(f"{value}–{int(value) + step - 1}", value)
        vocabulary = "modalities" if dim == "modality" else "body_parts"
        return Label(labels.concept(vocabulary, value), value)


def _order(row: ResultRow) -> tuple[int, int, str]:
    value = row.subjects.get("value")
    return (0 if value is not None else 1, -(value or 0), row.labels[0].text.casefold()
            if row.labels else "")


def result_view(answer: dict[str, Any], namer: Any) -> Result:
    """The table and chart of an answer (numbers exactly as released)."""
    dims = list(answer.get("group_by") or [])
    floor = int(answer.get("parameters", {}).get("floor") or 10)
    rows = [ResultRow([namer(d, str(g[d])) for d in dims], g["subjects"], g["studies"])
            for g in answer.get("groups", [])]
    rows.sort(key=_order)
    shown, folded = rows, []
    if len(rows) > TABLE_ROWS:
        shown = [r for r in rows if not r.subjects.get("suppressed")]
        folded = [r for r in rows if r.subjects.get("suppressed")]
    chart = None
    if len(dims) == 1 and rows:
        drawn = rows[:CHART_BARS]
        top = max((r.subjects.get("value") or 0 for r in drawn), default=0) or floor
        bars = [Bar(r.labels[0].text, str(r.subjects.get("display")),
                    round(100 * (r.subjects["value"] if r.subjects.get("value") is not None
                                 else floor / 2) / top, 1) if top else 0.0,
                    bool(r.subjects.get("suppressed")))
                for r in drawn]
        chart = Chart("cohort-chart", f"Subjects per {DIMENSION_LABELS[dims[0]].lower()}",
                      DIMENSION_LABELS[dims[0]], bars, hidden=len(rows) - len(drawn))
    return Result(answer, dims, shown, folded, chart, floor)


def csv_rows(answer: dict[str, Any], namer: Any) -> list[list[str]]:
    """The answer as CSV rows: a header, the total, then one row per group; suppressed numbers
    as released (``<10``)."""
    dims = list(answer.get("group_by") or [])
    header = ["row"]
    for dim in dims:
        header += [dim, f"{dim}_label"]
    out = [[*header, "subjects", "studies"]]
    total = answer["total"]
    out.append(["total"] + [""] * (2 * len(dims))
               + [str(total["subjects"]["display"]), str(total["studies"]["display"])])
    for group in answer.get("groups", []):
        row = ["group"]
        for dim in dims:
            label = namer(dim, str(group[dim]))
            row += [label.code, label.text]
        out.append([*row, str(group["subjects"]["display"]), str(group["studies"]["display"])])
    return out


def csv_cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(CSV_FORMULA) else value


def to_csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue()


# -- the page ---------------------------------------------------------------------------------
def _researcher() -> Identity:
    ident = identity()
    require_role(ident, Role.RESEARCHER)  # as the API: admins and providers get 403
    return ident


def _choices() -> dict[str, Any]:
    conditions = get_vocabulary("conditions")
    modalities = [(c.id, c.labels.get("en") or c.id) for c in
                  get_vocabulary("modalities").concepts()]
    common = [m for m in modalities if m[0] in COMMON_MODALITIES]
    common.sort(key=lambda m: COMMON_MODALITIES.index(m[0]))
    return {
        "condition_options": sorted(((c.id, c.labels.get("en") or c.id)
                                     for c in conditions.concepts()), key=lambda c: c[1]),
        "modalities_common": common,
        "modalities_more": [m for m in modalities if m[0] not in COMMON_MODALITIES],
        "body_parts": [(c.id, c.labels.get("en") or c.id)
                       for c in get_vocabulary("body_parts").concepts()],
        "sexes": [(s, labels.sex(s)) for s in SEXES],
        "dimensions": [(d, DIMENSION_LABELS[d]) for d in GROUP_DIMENSIONS],
        "dimension_labels": DIMENSION_LABELS,
        "condition_inputs": CONDITION_INPUTS,
        "exclude_inputs": EXCLUDE_INPUTS,
    }


def _page(form: CohortForm, status: int = 200, **context: Any) -> Response:
    budget = context.pop("budget", None)
    if budget is None:
        budget = runtime().cohorts.budget(identity())
    return render("web/cohorts.html", status=status, form=form, budget=budget,
                  **_choices(), **context)


def _ask(form: CohortForm) -> dict[str, Any] | Response:
    """Ask the service (the answer), or the page with the refusal as a message."""
    ident = identity()
    try:
        question = build_question(form)
    except ValidationError as exc:  # audited like a question the service refuses
        runtime().cohorts.refused(ident, exc.message)
        return _page(form, 400, error=exc.message, error_kind="invalid")
    try:
        answer: dict[str, Any] = runtime().cohorts.count(ident, question)
    except ValidationError as exc:
        return _page(form, 400, error=exc.message, error_kind="invalid")
    except TooManyRequests as exc:
        scope = "organisation" if "organisation privacy budget" in exc.message else "researcher"
        return _page(form, 429, error=exc.message, error_kind="budget", budget_scope=scope)
    return answer


@bp.get("/cohorts")
@signed_in()
def cohorts() -> BaseResponse:
    _researcher()
    form = parse_form(request.args)
    return _page(form)


@bp.post("/cohorts")
@signed_in()
def cohorts_count() -> BaseResponse:
    _researcher()
    form = parse_form(request.form)
    answer = _ask(form)
    if isinstance(answer, Response):
        return answer
    result = result_view(answer, Namer(answer))
    return _page(form, result=result, budget=answer["budget"], question=build_question(form))


@bp.post("/cohorts/export.csv")
@signed_in()
def cohorts_export() -> BaseResponse:
    _researcher()
    form = parse_form(request.form)
    answer = _ask(form)
    if isinstance(answer, Response):
        return answer
    body = to_csv(csv_rows(answer, Namer(answer)))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dims = "-".join(answer.get("group_by") or ["total"])
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="cohort-{dims}-{stamp}.csv"')
    response.headers["X-Cohort-Charged"] = str(answer["parameters"]["charged"])
    return response

