"""The dataset page: a description in words, how to get access, what its records show.

One service call reads the dataset (``DatasetService.get``: drafts and withdrawn datasets are
visible to their organisation's providers and admins only, 404 for anyone else, as in the API)
and one reads its organisation; the rest is presentation. Values derived from the study-level
records (``Dataset.aggregates``, already privacy-protected) replace the declared ones, as in
search and in the DCAT export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from flask import request, url_for
from werkzeug.wrappers import Response as BaseResponse

from catalogue.errors import NotFound
from catalogue.model.dataset import Dataset, DatasetStatus, Distribution
from catalogue.model.identity import Organisation
from catalogue.search.mappings import load_definition
from catalogue.web import labels
from catalogue.web.present import Row, Value, label_for, present, rows
from catalogue.web.site import bp, identity, render, runtime

RDF_FORMATS = (("Turtle", "turtle"), ("RDF/XML", "rdfxml"), ("JSON-LD", "jsonld"),
               ("N-Triples", "nt"))
#: ``fields`` keys that only repeat a structured attribute shown elsewhere on the page
_SHOWN_AS_ATTRIBUTES = frozenset({
    "condition", "health_category", "health_theme", "number_of_unique_individuals",
    "number_of_records", "nbr_of_studies", "nbr_of_subjects", "distributions",
})
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("imaging", "Cancer and imaging", (
        "types", "interoperability_level", "collection_methods", "annotation_labels",
        "segmentation_methods", "number_of_segmentations", "subject", "code_values",
        "coding_systems", "variables", "has_structured_data", "analytics")),
    ("use", "Conditions of use", (
        "rights", "legal_basis", "purpose", "personal_data", "applicable_legislation")),
    ("coverage", "Coverage and provenance", (
        "spatial", "temporal", "population_coverage", "provenance", "was_generated_by",
        "retention_period", "languages", "frequency", "spatial_resolution",
        "temporal_resolution")),
    ("people", "Publisher and creators", (
        "publisher", "creators", "custodian", "qualified_attributions", "publisher_type",
        "publisher_note")),
    ("related", "Documentation and related resources", (
        "documentation", "conforms_to", "relations", "qualified_relations", "is_referenced_by",
        "source", "in_series", "has_version", "is_version_of", "samples",
        "quality_annotations")),
    ("record", "Versions and identifiers", ("version", "version_notes", "other_identifiers")),
)
_ACCESS_HELP = {
    "PUBLIC": "Openly available: use the links under Distributions.",
    "RESTRICTED": "Available on request, under conditions: contact the data holder or the "
                  "health data access body named below.",
    "NON_PUBLIC": "Not publicly available: access for secondary use goes through the health "
                  "data access body or the data holder named below.",
}
_CHARTS = (("modalities", "Imaging modality", "modalities"),
           ("body_parts", "Body part", "body_parts"),
           ("age_bands", "Age at study", None),
           ("sexes", "Sex", None),
           ("manufacturers", "Equipment manufacturer", None))


@dataclass
class Section:
    id: str
    heading: str
    rows: list[Row]


@dataclass
class Bar:
    label: str
    display: str
    width: float  # percent of the chart's largest count
    suppressed: bool


@dataclass
class Chart:
    id: str
    caption: str
    dimension: str
    bars: list[Bar]


@dataclass
class DistributionView:
    title: str
    lang: str | None
    access_url: str | None
    download_url: str | None
    rows: list[Row] = field(default_factory=list)


# -- pieces -----------------------------------------------------------------------------------
def _lang_values(texts: dict[str, str]) -> list[Value]:
    ordered = sorted(texts.items(), key=lambda kv: (kv[0] != "en", kv[0]))
    return [Value(t, lang=None if lang in ("und", "") else lang) for lang, t in ordered]


def coded(vocabulary: str, facet: str, values: list[str]) -> list[Value]:
    """Coded values with their vocabulary label, code, and a link to search by them."""
    out = []
    seen = set()
    for value in values:
        cid = labels.concept_id(vocabulary, value)
        if cid in seen:  # the same concept written twice (a code and an IRI)
            continue
        seen.add(cid)
        label = labels.concept(vocabulary, value)
        known = labels.known(vocabulary, value)
        href = url_for("web.search") + "?" + urlencode({facet: cid})
        out.append(Value(label, href=href, note=cid if known and label != cid else None))
    return out


def _date(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    return value.date().isoformat() if isinstance(value, datetime) else value.isoformat()


def _period(start: date | None, end: date | None) -> str | None:
    if start is None and end is None:
        return None
    return f"{_date(start) or '…'} – {_date(end) or '…'}"


def summary(ds: Dataset, org: Organisation | None, derived: bool) -> list[Row]:
    """The key facts at the top of the page."""
    from_records = " (from the records)" if derived else ""
    facts: list[tuple[str, list[Value]]] = [
        ("Provider", [Value(org.name if org else ds.organisation_id,
                            href=url_for("web.search", organisation_id=ds.organisation_id))]),
        ("Country", [Value(labels.country(c), href=url_for("web.search", countries=c))
                     for c in ds.countries]),
        ("Individuals" + from_records, present(ds.number_of_individuals)),
        ("Imaging studies" + from_records, present(ds.number_of_studies)),
        ("Typical ages", [Value(f"{_or(ds.min_age)}–{_or(ds.max_age)} years")]
         if ds.min_age is not None or ds.max_age is not None else []),
        ("Acquisition period", [Value(p)] if (p := _period(ds.temporal_start, ds.temporal_end))
         else []),
        ("Access rights", [Value(labels.access(ds.access_rights), href=ds.access_rights)]),
        ("Licence", present(ds.licence)),
        ("Last updated", [Value(d)] if (d := _date(ds.modified or ds.updated_at)) else []),
    ]
    return [Row(label, values) for label, values in facts if values]


def _or(value: int | None) -> str:
    return "?" if value is None else str(value)


def imaging_rows(ds: Dataset) -> list[Row]:
    found = [
        ("Cancer condition", coded("conditions", "conditions", ds.conditions)),
        ("Imaging modality", coded("modalities", "modalities", ds.modalities)),
        ("Body part", coded("body_parts", "body_parts", ds.body_parts)),
        ("Equipment manufacturer", [Value(labels.iri(m) if "://" in m else m,
                                          href=m if m.startswith("http") else None)
                                    for m in ds.manufacturers]),
        ("Sex", [Value(labels.sex(s)) for s in ds.sexes]),
        ("Health category", [Value(labels.iri(h) if "://" in h else labels.humanise(h),
                                   href=h if h.startswith("http") else None)
                             for h in ds.health_categories]),
        ("Theme", present(ds.themes)),
        ("Keywords", [Value(k, href=url_for("web.search", q=k)) for k in ds.keywords]),
    ]
    return [Row(label, values) for label, values in found if values]


def distribution_views(ds: Dataset) -> list[DistributionView]:
    extra = ds.fields.get("distributions") or []
    out = []
    for i, dist in enumerate(ds.distributions):
        more: dict[str, Any] = extra[i] if i < len(extra) and isinstance(extra[i], dict) else {}
        out.append(_distribution(dist, more))
    return out


def _distribution(dist: Distribution, more: dict[str, Any]) -> DistributionView:
    title = next(iter(_lang_values(dist.title)), None)
    facts: list[Row] = []
    for label, values in (
        ("Format", [Value(labels.iri(dist.format), href=dist.format)
                    if dist.format.startswith("http") else Value(dist.format)]
         if dist.format else []),
        ("Media type", [Value(dist.media_type)] if dist.media_type else []),
        ("Licence", present(dist.licence)),
        ("Size", [Value(s)] if (s := labels.byte_size(dist.byte_size)) else []),
    ):
        if values:
            facts.append(Row(label, values))
    for key, value in more.items():
        if key == "iri":
            continue
        values = present(value, key)
        if values:
            facts.append(Row("Access conditions" if key == "rights" else label_for(key), values))
    return DistributionView(
        title=title.text if title else "Distribution",
        lang=title.lang if title else None,
        access_url=dist.access_url, download_url=dist.download_url, rows=facts)


def sections(ds: Dataset) -> list[Section]:
    """Every other property of the description, grouped; unknown ones last."""
    out = []
    used = set(_SHOWN_AS_ATTRIBUTES) | {"hdab", "contact_points"}
    for sid, heading, keys in SECTIONS:
        found = rows(ds.fields, keys)
        used.update(keys)
        if sid == "imaging":
            found = imaging_rows(ds) + found
        if sid == "record":
            found = record_rows(ds) + found
        if found:
            out.append(Section(sid, heading, found))
    others = rows(ds.fields, sorted(k for k in ds.fields if k not in used))
    if others:
        out.append(Section("other", "Other properties", others))
    return out


def record_rows(ds: Dataset) -> list[Row]:
    found = [
        ("Identifier", [Value(ds.identifier)]),
        ("IRI", [Value(ds.iri, href=ds.iri if ds.iri.startswith("http") else None)]
         if ds.iri else []),
        ("Issued", [Value(d)] if (d := _date(ds.issued)) else []),
        ("Modified", [Value(d)] if (d := _date(ds.modified)) else []),
        ("Updated in this catalogue", [Value(d)] if (d := _date(ds.updated_at)) else []),
        ("Landing page", present(ds.landing_page)),
    ]
    return [Row(label, values) for label, values in found if values]


def access_info(ds: Dataset) -> dict[str, Any]:
    """Access rights in words and whom to ask: contact points, the health data access body,
    the publisher's contact point when there is no other."""
    code = (ds.access_rights or "").rstrip("/").rsplit("/", 1)[-1]
    contacts = present(ds.fields.get("contact_points"), "contact_points")
    publisher = ds.fields.get("publisher")
    if not contacts and isinstance(publisher, dict):
        contacts = present(publisher.get("contact_point") or publisher.get("contact_points"),
                           "contact_point")
    return {
        "rights": labels.access(ds.access_rights),
        "rights_iri": ds.access_rights,
        "help": _ACCESS_HELP.get(code, "The description does not say how to get access: ask "
                                       "the contact point below."),
        "hdab": present(ds.fields.get("hdab"), "hdab"),
        "contacts": contacts,
        "landing_page": ds.landing_page,
        "request_urls": [d.access_url for d in ds.distributions if d.access_url],
    }


def charts(records: dict[str, Any]) -> list[Chart]:
    """Small bar charts of the protected record aggregates (suppressed cells marked)."""
    step = load_definition("subjects").fields["studies.age_band"].bin or 5
    out = []
    for key, dimension, vocabulary in _CHARTS:
        cells: dict[str, Any] = records.get(key) or {}
        if not cells:
            continue
        entries = []
        for name, cell in cells.items():
            count = None if cell.get("suppressed") else cell.get("value")
            if key == "age_bands":
                label = f"{name}–{int(name) + step - 1}"
            elif vocabulary:
                label = labels.concept(vocabulary, name)
            elif key == "sexes":
                label = labels.sex(name)
            else:
                label = name
            entries.append((label, count, cell))
        if key != "age_bands":
            entries.sort(key=lambda e: (-(e[1] or 0), e[0]))
        top = max((c for _, c, _ in entries if c is not None), default=0) or 1
        floor = int(records.get("floor") or 10)
        bars = [Bar(label, f"{count:,}" if count is not None else str(cell.get("display")
                                                                        or f"<{floor}"),
                    round(100 * (count if count is not None else floor / 2) / top, 1),
                    count is None)
                for label, count, cell in entries]
        out.append(Chart(f"chart-{key}", f"Subjects by {dimension.lower()}", dimension, bars))
    return out


def cell_text(cell: Any, floor: int) -> str | None:
    if not isinstance(cell, dict):
        return None
    if cell.get("suppressed"):
        return str(cell.get("display") or f"<{floor}")
    value = cell.get("value")
    return f"{value:,}" if isinstance(value, int) else None


def json_ld(ds: Dataset, org: Organisation | None, page_url: str) -> dict[str, Any]:
    """The dataset as a schema.org ``Dataset`` (what dataset search engines read)."""
    description = ds.description.get("en") or next(iter(ds.description.values()), None)
    access_code = (ds.access_rights or "").rstrip("/").rsplit("/", 1)[-1]
    doc: dict[str, Any] = {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "@id": ds.iri or page_url,
        "name": ds.label(),
        "description": description,
        "url": page_url,
        "identifier": [i for i in (ds.identifier, ds.iri) if i],
        "keywords": ds.keywords or None,
        "license": ds.licence,
        "isAccessibleForFree": access_code == "PUBLIC" if ds.access_rights else None,
        "conditionsOfAccess": labels.access(ds.access_rights) if ds.access_rights else None,
        "publisher": {"@type": "Organization", "name": org.name if org else ds.organisation_id,
                      **({"url": org.homepage} if org and org.homepage else {})},
        "spatialCoverage": [{"@type": "Place", "name": labels.country(c)}
                            for c in ds.countries] or None,
        "temporalCoverage": (f"{_date(ds.temporal_start) or '..'}/"
                             f"{_date(ds.temporal_end) or '..'}"
                             if ds.temporal_start or ds.temporal_end else None),
        "datePublished": _date(ds.issued),
        "dateModified": _date(ds.modified or ds.updated_at),
        "measurementTechnique": list(dict.fromkeys(labels.concept("modalities", m)
                                                   for m in ds.modalities)) or None,
        "about": list({labels.concept_id("conditions", c): _condition(c)
                       for c in ds.conditions}.values()) or None,
        "distribution": [{"@type": "DataDownload",
                          "name": next(iter(d.title.values()), None),
                          "contentUrl": d.download_url or d.access_url,
                          "encodingFormat": d.media_type or d.format}
                         for d in ds.distributions if d.download_url or d.access_url] or None,
        "version": ds.fields.get("version") if isinstance(ds.fields.get("version"), str)
        else None,
        "includedInDataCatalog": {"@type": "DataCatalog",
                                  "name": runtime().config.catalog_title,
                                  "url": url_for("web.home", _external=True)},
    }
    return _compact(doc)


def _condition(value: str) -> dict[str, Any]:
    cid = labels.concept_id("conditions", value)
    system, _, code = cid.partition(":")
    out: dict[str, Any] = {"@type": "MedicalCondition",
                           "name": labels.concept("conditions", value)}
    if code:
        names = {"snomed": "SNOMED CT", "icd10": "ICD-10", "icdo3": "ICD-O-3"}
        out["code"] = {"@type": "MedicalCode", "codeValue": code,
                       "codingSystem": names.get(system, system)}
    return out


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_compact(v) for v in value if v is not None]
    return value


def _page_url(dataset_id: str) -> str:
    base = runtime().config.base_url.rstrip("/")
    path = url_for("web.dataset", dataset_id=dataset_id)
    return f"{base}{path}" if base else url_for("web.dataset", dataset_id=dataset_id,
                                                _external=True)


# -- the page ---------------------------------------------------------------------------------
@bp.get("/datasets/<dataset_id>")
def dataset(dataset_id: str) -> BaseResponse:
    ident = identity()
    raw = runtime().datasets.get(ident, dataset_id)  # NotFound for drafts of others
    try:
        org: Organisation | None = runtime().identities.get_organisation(raw.organisation_id)
    except NotFound:
        org = None
    records: dict[str, Any] = raw.aggregates.get("records") or {}
    ds = raw.with_aggregates()
    floor = int(records.get("floor") or 10)
    published = ds.status == DatasetStatus.PUBLISHED
    page_url = _page_url(dataset_id)
    return render(
        "web/dataset.html",
        ds=ds,
        org=org,
        lang=(None if "en" in ds.title else next(iter(ds.title), None)),
        titles=_lang_values(ds.title),
        descriptions=_lang_values(ds.description),
        alternative=present(ds.fields.get("alternative")),
        summary=summary(ds, org, bool(records)),
        access=access_info(ds),
        distributions=distribution_views(ds),
        sections=sections(ds),
        records=records,
        totals=[(label, text) for label, key in (("Subjects", "subjects"),
                                                 ("Imaging studies", "studies"))
                if (text := cell_text(records.get(key), floor))],
        floor=floor,
        charts=charts(records) if records else [],
        rdf_links=[(name, url_for("dcat.dataset", dataset_id=dataset_id, format=fmt))
                   for name, fmt in RDF_FORMATS] if published else [],
        api_url=url_for("api_v1.get_dataset", dataset_id=dataset_id),
        json_ld=json_ld(ds, org, page_url),
        canonical=page_url,
        back=_back_link(),
    )


def _back_link() -> str | None:
    """The search the user came from (same site only), for "back to results"."""
    referrer = request.referrer or ""
    search = url_for("web.search", _external=True)
    return referrer if referrer.startswith(search) else None
