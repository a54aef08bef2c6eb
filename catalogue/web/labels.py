"""Readable labels for the codes and IRIs a dataset description holds.

Vocabulary concepts (conditions, modalities, body parts) take their labels from
:mod:`catalogue.ontology`, as the search API does; EU authority tables, legislation and the
catalogue's own codes get short English names here. Anything unknown is shown as written
(shortened when it is a long IRI), never dropped.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from catalogue.dcat.countries import alpha2_from_iri
from catalogue.ontology import get_vocabulary
from catalogue.services.search import access_label

AUTHORITY = "http://publications.europa.eu/resource/authority/"
EUCAIM = "https://cancerimage.eu/ontology/EUCAIM#"

#: ISO 3166-1 alpha-2 → English short name (Europe and the usual partners; others show the code)
COUNTRIES: dict[str, str] = {
    "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "CH": "Switzerland", "CY": "Cyprus",
    "CZ": "Czechia", "DE": "Germany", "DK": "Denmark", "EE": "Estonia", "ES": "Spain",
    "FI": "Finland", "FR": "France", "GB": "United Kingdom", "GR": "Greece", "HR": "Croatia",
    "HU": "Hungary", "IE": "Ireland", "IS": "Iceland", "IT": "Italy", "LI": "Liechtenstein",
    "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia", "MT": "Malta", "NL": "Netherlands",
    "NO": "Norway", "PL": "Poland", "PT": "Portugal", "RO": "Romania", "RS": "Serbia",
    "SE": "Sweden", "SI": "Slovenia", "SK": "Slovakia", "TR": "Türkiye", "UA": "Ukraine",
    "US": "United States", "CA": "Canada", "IL": "Israel", "NZ": "New Zealand",
    "AU": "Australia", "JP": "Japan",
}
#: EU data themes (http://publications.europa.eu/resource/authority/data-theme)
_THEMES = {
    "AGRI": "Agriculture, fisheries, forestry and food", "ECON": "Economy and finance",
    "EDUC": "Education, culture and sport", "ENER": "Energy", "ENVI": "Environment",
    "GOVE": "Government and public sector", "HEAL": "Health",
    "INTR": "International issues", "JUST": "Justice, legal system and public safety",
    "REGI": "Regions and cities", "SOCI": "Population and society",
    "TECH": "Science and technology", "TRAN": "Transport",
}
_LANGUAGES = {
    "ENG": "English", "DEU": "German", "FRA": "French", "SPA": "Spanish", "ITA": "Italian",
    "NLD": "Dutch", "POR": "Portuguese", "SWE": "Swedish", "POL": "Polish", "FIN": "Finnish",
    "CES": "Czech", "HUN": "Hungarian", "ELL": "Greek", "DAN": "Danish", "MUL": "Multiple",
}
_FILE_TYPES = {"DCM": "DICOM", "NIFTI": "NIfTI", "CSV": "CSV", "JSON": "JSON", "ZIP": "ZIP",
               "PDF": "PDF", "XML": "XML", "TAR": "TAR", "GZIP": "GZIP", "RDF_TURTLE": "Turtle"}
_SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown",
          EUCAIM + "COM1001366": "Female", EUCAIM + "COM1001370": "Male"}
_ELI = re.compile(r"^https?://data\.europa\.eu/eli/(reg|dir|dec)(?:_impl|_del)?/(\d{4})/(\d+)")
_ELI_KINDS = {"reg": "Regulation", "dir": "Directive", "dec": "Decision"}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def country(code: str) -> str:
    """A country's name from its alpha-2 code (or its EU authority IRI)."""
    if "://" in code:
        code = alpha2_from_iri(code) or code
    return COUNTRIES.get(code.upper(), code)


def concept(vocabulary: str, value: str, lang: str = "en") -> str:
    """The label of a coded value (id, code, IRI or label); a value outside the vocabulary as
    written (an IRI in short)."""
    found = get_vocabulary(vocabulary).resolve(value)
    if found:
        return get_vocabulary(vocabulary).label(found.id, lang)
    return iri(value) if value.startswith(("http://", "https://")) else value


def known(vocabulary: str, value: str) -> bool:
    """Whether a coded value is in the vocabulary."""
    return get_vocabulary(vocabulary).resolve(value) is not None


def concept_id(vocabulary: str, value: str) -> str:
    """The vocabulary id of a coded value (the value itself when it is not in the vocabulary)."""
    found = get_vocabulary(vocabulary).resolve(value)
    return found.id if found else value


def sex(value: str) -> str:
    return _SEXES.get(value, value)


def access(iri: str | None) -> str:
    """Access rights (EU access-right table) in words."""
    return access_label(iri) if iri else "Not stated"


def humanise(code: str) -> str:
    """``NON_PUBLIC`` → "Non public", ``ResearchInstitute`` → "Research institute"."""
    text = _CAMEL.sub(" ", code).replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:].lower() if text.isupper() or " " in text else text


def short_iri(iri: str, limit: int = 64) -> str:
    """An IRI without its scheme, cut to ``limit`` characters."""
    parts = urlsplit(iri)
    text = (parts.netloc + parts.path + (f"#{parts.fragment}" if parts.fragment else "")) \
        if parts.netloc else iri
    text = text.rstrip("/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iri(value: str) -> str:
    """A readable name for an IRI: EU authority codes, ELI legislation, EUCAIM classes."""
    if value in _SEXES:
        return _SEXES[value]
    if value.startswith(AUTHORITY):
        table, _, code = value[len(AUTHORITY):].rstrip("/").partition("/")
        if table == "country":
            return country(value)
        if table == "access-right":
            return access_label(value)
        if table == "data-theme":
            return _THEMES.get(code, code)
        if table == "language":
            return _LANGUAGES.get(code, code)
        if table == "file-type":
            return _FILE_TYPES.get(code, code)
        return humanise(code) if code else value
    eli = _ELI.match(value)
    if eli:
        return f"{_ELI_KINDS[eli.group(1)]} (EU) {eli.group(2)}/{eli.group(3)}"
    if value.startswith(EUCAIM):
        return f"EUCAIM {value[len(EUCAIM):]}"
    if "/authority/" in value or "controlled-vocabularies" in value:
        code = re.split(r"[/#]", value.rstrip("/"))[-1]
        return humanise(code) if code else value
    return short_iri(value)


def media_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.rsplit("/", 1)[-1].upper() if value.startswith("http") else value


def byte_size(size: int | None) -> str | None:
    """``52428800000`` → "52.4 GB" (SI units, as file sizes are usually announced)."""
    if size is None:
        return None
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"  # pragma: no cover - the loop always returns
