"""Facets: structured dataset attributes derived from one or more ``fields`` entries.

Some catalogue attributes gather several RDF properties (``health_categories`` from
``healthdcatap:healthCategory`` and ``healthTheme``; ``countries`` from the country IRIs among
``dct:spatial``). The profile reads every property into its own ``fields`` entry (so that it can
be written back exactly) and a facet *derives* the attribute from those entries. Before
writing, a facet *pushes* the attribute back: entries the attribute no longer contains are
dropped, values it gained are added to its first source.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from catalogue.dcat.profiles.kinds import parse_temporal


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _identity(item: Any) -> str | None:
    return item if isinstance(item, str) else None


class Facet(abc.ABC):
    attrs: tuple[str, ...]

    @abc.abstractmethod
    def derive(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The facet attributes computed from ``fields``."""

    @abc.abstractmethod
    def push(self, attrs: Mapping[str, Any], fields: dict[str, Any]) -> None:
        """Change ``fields`` in place so that :meth:`derive` gives back ``attrs``."""


class ListFacet(Facet):
    """A list attribute: the union of the facet values of several ``fields`` lists."""

    def __init__(
        self,
        attr: str,
        sources: tuple[str, ...],
        to_facet: Callable[[Any], str | None] = _identity,
        from_facet: Callable[[str], Any] = lambda value: value,
    ) -> None:
        self.attrs = (attr,)
        self.attr = attr
        self.sources = sources
        self.to_facet = to_facet
        self.from_facet = from_facet

    def derive(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        values: list[str] = []
        for source in self.sources:
            for item in _items(fields.get(source)):
                value = self.to_facet(item)
                if value is not None and value not in values:
                    values.append(value)
        return {self.attr: values}

    def push(self, attrs: Mapping[str, Any], fields: dict[str, Any]) -> None:
        if self.attr not in attrs:
            return
        target = list(attrs[self.attr] or [])
        covered: set[str] = set()
        for source in self.sources:
            if source not in fields:
                continue
            kept = []
            for item in _items(fields[source]):
                value = self.to_facet(item)
                if value is None or value in target:
                    kept.append(item)
                    if value is not None:
                        covered.add(value)
            if kept:
                fields[source] = kept
            else:
                del fields[source]
        missing = [self.from_facet(v) for v in target if v not in covered]
        missing = [item for item in missing if item is not None]
        if missing:
            fields[self.sources[0]] = _items(fields.get(self.sources[0])) + missing


class ScalarFacet(Facet):
    """A single value: the first of several ``fields`` entries that is set."""

    def __init__(self, attr: str, sources: tuple[str, ...]) -> None:
        self.attrs = (attr,)
        self.attr = attr
        self.sources = sources

    def derive(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        for source in self.sources:
            if fields.get(source) is not None:
                return {self.attr: fields[source]}
        return {self.attr: None}

    def push(self, attrs: Mapping[str, Any], fields: dict[str, Any]) -> None:
        if self.attr not in attrs:
            return
        value = attrs[self.attr]
        present = [s for s in self.sources if fields.get(s) is not None]
        if value is None:
            for source in present:
                del fields[source]
        elif self.derive(fields)[self.attr] != value:
            for source in present or [self.sources[0]]:
                fields[source] = value


class PeriodFacet(Facet):
    """Start and end dates spanning every period of a ``fields`` list of periods."""

    def __init__(self, start_attr: str, end_attr: str, source: str) -> None:
        self.attrs = (start_attr, end_attr)
        self.start_attr = start_attr
        self.end_attr = end_attr
        self.source = source

    def derive(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        starts: list[date] = []
        ends: list[date] = []
        for period in _items(fields.get(self.source)):
            if not isinstance(period, dict):
                continue
            start = parse_temporal(period["start"]) if period.get("start") else None
            end = parse_temporal(period["end"], end=True) if period.get("end") else None
            if start is not None:
                starts.append(start.date())
            if end is not None:
                ends.append(end.date())
        return {
            self.start_attr: min(starts) if starts else None,
            self.end_attr: max(ends) if ends else None,
        }

    def push(self, attrs: Mapping[str, Any], fields: dict[str, Any]) -> None:
        if self.start_attr not in attrs and self.end_attr not in attrs:
            return
        wanted = {
            self.start_attr: _as_date(attrs.get(self.start_attr)),
            self.end_attr: _as_date(attrs.get(self.end_attr)),
        }
        if self.derive(fields) == wanted:
            return
        period = {
            key: value.isoformat()
            for key, value in (("start", wanted[self.start_attr]), ("end", wanted[self.end_attr]))
            if value is not None
        }
        if period:
            fields[self.source] = [period]
        else:
            fields.pop(self.source, None)


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = parse_temporal(str(value))
    return parsed.date() if parsed else None
