"""Dataset descriptions: the structured, searchable part of a DCAT-AP dataset."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

#: attributes that record-derived ``Dataset.aggregates`` set (they replace what the provider
#: declared, for search and in the DCAT description).
AGGREGATE_ATTRIBUTES = (
    "number_of_individuals",
    "number_of_studies",
    "min_age",
    "max_age",
    "sexes",
    "modalities",
    "body_parts",
    "manufacturers",
    "conditions",
    "countries",
    "temporal_start",
    "temporal_end",
)


class DatasetStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


@dataclass
class Distribution:
    title: dict[str, str] = field(default_factory=dict)
    access_url: str | None = None
    download_url: str | None = None
    media_type: str | None = None
    format: str | None = None
    licence: str | None = None
    byte_size: int | None = None


@dataclass
class Dataset:
    """One dataset description. ``title``/``description`` map language tags to text."""

    identifier: str
    organisation_id: str
    title: dict[str, str]
    description: dict[str, str] = field(default_factory=dict)
    id: str | None = None
    iri: str | None = None
    status: DatasetStatus = DatasetStatus.DRAFT
    keywords: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    health_categories: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    body_parts: list[str] = field(default_factory=list)
    manufacturers: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    sexes: list[str] = field(default_factory=list)
    access_rights: str | None = None
    licence: str | None = None
    number_of_individuals: int | None = None
    number_of_studies: int | None = None
    min_age: int | None = None
    max_age: int | None = None
    temporal_start: date | None = None
    temporal_end: date | None = None
    landing_page: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    aggregates: dict[str, Any] = field(default_factory=dict)
    validation: list[dict[str, Any]] = field(default_factory=list)
    source_id: str | None = None
    distributions: list[Distribution] = field(default_factory=list)
    graph: str | None = None
    content_hash: str | None = None
    issued: datetime | None = None
    modified: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1

    def label(self) -> str:
        """Best title for display: English, else any."""
        return self.title.get("en") or next(iter(self.title.values()), self.identifier)

    def with_aggregates(self) -> Dataset:
        """This dataset with the values derived from its study-level records (already
        privacy-protected in ``aggregates``) in place of the declared ones."""
        changes: dict[str, Any] = {}
        for name in AGGREGATE_ATTRIBUTES:
            value = self.aggregates.get(name)
            if name in ("temporal_start", "temporal_end") and isinstance(value, str):
                try:
                    value = date.fromisoformat(value[:10])
                except ValueError:
                    value = None
            if value is not None and value != []:
                changes[name] = value
        return replace(self, **changes) if changes else self
