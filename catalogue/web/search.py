"""The search page: the JSON search API's parameters, as a page.

``/search?q=lung&modalities=CT&countries=ES`` and ``/api/v1/datasets?q=lung&modalities=CT&
countries=ES`` are the same search: the page parses its query string with the API's
:class:`SearchParams`, makes the one service call, and renders the result. Every link on the
page (facet values, removing a filter, pages) is the current query string with one change, so
every state is a URL and the page works without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import redirect, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from catalogue.errors import CatalogueError, ValidationError
from catalogue.model.dataset import Dataset
from catalogue.search.mappings import FacetDef, load_definition
from catalogue.services.datasets import DatasetPage
from catalogue.services.search import (
    DATE_RANGES,
    MAX_WINDOW,
    RANGES,
    SearchParams,
    resolve_selection,
)
from catalogue.web import labels
from catalogue.web.site import bp, identity, marked, render, runtime

SHOWN_PER_FACET = 8  # values listed before "show more" (the rest stay in the page, folded)
PAGING = ("page", "after")
SORT_OPTIONS = (
    ("relevance", "Best match"),
    ("-modified", "Recently updated"),
    ("modified", "Least recently updated"),
    ("-number_of_individuals", "Most individuals"),
    ("number_of_individuals", "Fewest individuals"),
    ("-number_of_studies", "Most imaging studies"),
)
RANGE_LABELS = {
    "age_min": "Ages from {}", "age_max": "Ages up to {}",
    "individuals_min": "At least {} individuals", "individuals_max": "At most {} individuals",
    "studies_min": "At least {} studies", "studies_max": "At most {} studies",
    "modified_since": "Updated since {}", "modified_until": "Updated until {}",
    "acquired_from": "Acquired from {}", "acquired_to": "Acquired until {}",
}


# -- the query string -------------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """A search as ordered query-string pairs; every link of the page is a variant of it."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def from_request(cls) -> State:
        return cls(tuple((k, v) for k, v in request.args.items(multi=True) if v.strip()))

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def without(self, *names: str) -> State:
        return State(tuple((k, v) for k, v in self.pairs if k not in names))

    def replaced(self, name: str, value: str | None) -> State:
        kept = [(k, v) for k, v in self.pairs if k != name]
        return State(tuple(kept + ([(name, value)] if value else [])))

    def toggled(self, facet: FacetDef, key: str) -> State:
        """With ``key`` selected on ``facet``, or without it (and whatever resolves to it)."""
        base = self.without(*PAGING)
        chosen = [v for v in base.values(facet.name) if resolve_selection(facet, v) == key]
        if chosen:
            return State(tuple(p for p in base.pairs
                               if not (p[0] == facet.name and p[1] in chosen)))
        return State((*base.pairs, (facet.name, key)))

    def hidden(self, *exclude: str) -> list[tuple[str, str]]:
        """Pairs for hidden form fields (a form that changes ``exclude`` keeps the rest)."""
        return [(k, v) for k, v in self.pairs if k not in exclude and k not in PAGING]

    def query(self) -> str:
        return urlencode(self.pairs)

    def href(self) -> str:
        query = self.query()
        return url_for("web.search") + (f"?{query}" if query else "")


# -- what the template shows ------------------------------------------------------------------
@dataclass
class Bucket:
    key: str
    label: str
    count: int
    selected: bool
    url: str
    children: list[Bucket] = field(default_factory=list)


@dataclass
class FacetView:
    name: str
    label: str
    shown: list[Bucket]
    more: list[Bucket]


@dataclass
class Hit:
    id: str
    url: str
    title: Markup | str
    lang: str | None
    snippet: Markup | str | None
    status: str
    provider: str
    countries: list[str]
    conditions: list[str]
    modalities: list[str]
    individuals: int | None
    ages: str | None
    access: str


@dataclass
class Chip:
    label: str
    url: str


def _bucket_label(facet: FacetDef, key: str, label: str, names: dict[str, str]) -> str:
    if facet.name == "countries":
        return labels.country(key)
    if facet.name == "organisation_id":
        return names.get(key, label)
    if facet.name == "sexes":
        return labels.sex(key)
    if label == key and key.startswith(("http://", "https://")):
        return labels.iri(key)  # a code outside the vocabularies, given as an IRI
    return label


def facet_views(page: DatasetPage, state: State) -> list[FacetView]:
    definition = load_definition("datasets")
    facets = {f.name: f for f in definition.facets}
    out = []
    for listing in page.listing:
        facet = facets[listing["name"]]

        def build(raw: Iterable[dict[str, Any]], facet: FacetDef = facet) -> list[Bucket]:
            return [Bucket(b["key"], _bucket_label(facet, b["key"], b["label"],
                                                   page.organisations),
                           b["count"], b["selected"], state.toggled(facet, b["key"]).href(),
                           build(b.get("children", ())))
                    for b in raw]

        buckets = build(listing["buckets"])
        if not buckets:
            continue
        # selected values always stay in view; the others by count
        shown = buckets[:SHOWN_PER_FACET]
        more = [b for b in buckets[SHOWN_PER_FACET:] if not b.selected]
        shown += [b for b in buckets[SHOWN_PER_FACET:] if b.selected]
        out.append(FacetView(facet.name, listing["label"], shown, more))
    return out


def active_filters(state: State, names: dict[str, str]) -> list[Chip]:
    """Each selection and range as a chip whose link removes it."""
    definition = load_definition("datasets")
    chips = []
    for facet in definition.facets:
        for value in state.values(facet.name):
            key = resolve_selection(facet, value)
            label = (labels.concept(facet.vocabulary, value) if facet.vocabulary
                     else _bucket_label(facet, key, key, names))
            chips.append(Chip(f"{facet.label}: {label}", state.toggled(facet, key).href()))
    for name in (*RANGES, *DATE_RANGES):
        for value in state.values(name):
            chips.append(Chip(RANGE_LABELS[name].format(value),
                              state.without(name, *PAGING).href()))
    return chips


def hit_view(ds: Dataset, page: DatasetPage) -> Hit:
    shown = ds.with_aggregates()
    marks = page.highlights.get(ds.id or "", {})
    title_lang = "en" if "en" in ds.title else next(iter(ds.title), None)
    description = ds.description.get("en") or next(iter(ds.description.values()), "")
    snippet: Markup | str | None = marked(marks.get("description"))
    if snippet is None and description:
        snippet = description if len(description) <= 240 else description[:239] + "…"
    ages = None
    if shown.min_age is not None or shown.max_age is not None:
        ages = f"{number_or(shown.min_age, '?')}–{number_or(shown.max_age, '?')} years"
    return Hit(
        id=ds.id or "",
        url=url_for("web.dataset", dataset_id=ds.id),
        title=marked(marks.get("title")) or ds.label(),
        lang=None if marks.get("title") or title_lang in (None, "und") else title_lang,
        snippet=snippet,
        status=ds.status.value,
        provider=page.organisations.get(ds.organisation_id, ds.organisation_id),
        countries=[labels.country(c) for c in shown.countries],
        conditions=list(dict.fromkeys(labels.concept("conditions", c)
                                      for c in shown.conditions))[:4],
        modalities=list(dict.fromkeys(labels.concept("modalities", m)
                                      for m in shown.modalities))[:5],
        individuals=shown.number_of_individuals,
        ages=ages,
        access=labels.access(shown.access_rights),
    )


def number_or(value: int | None, default: str) -> str:
    return default if value is None else str(value)


def pages(current: int, last: int) -> list[int | None]:
    """Page numbers to link: the first, the last, two around the current one (None: a gap)."""
    wanted = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[int | None] = []
    previous = 0
    for n in wanted:
        if previous and n - previous > 1:
            out.append(None)
        out.append(n)
        previous = n
    return out


def _pagination(state: State, params: SearchParams, total: int) -> dict[str, Any] | None:
    last = min(math.ceil(total / params.size), MAX_WINDOW // params.size)
    if last <= 1:
        return None

    def href(n: int) -> str:
        return state.without("after").replaced("page", str(n) if n > 1 else None).href()

    return {
        "current": params.page,
        "last": last,
        "previous": href(params.page - 1) if params.page > 1 else None,
        "next": href(params.page + 1) if params.page < last else None,
        "pages": [(n, href(n) if n else None) for n in pages(params.page, last)],
    }


# -- the page ---------------------------------------------------------------------------------
@bp.get("/")
def home() -> BaseResponse:
    """The home page is the search page (with every published dataset)."""
    return search()


@bp.get("/search")
def search() -> BaseResponse:
    state = State.from_request()
    if len(state.pairs) != len(list(request.args.items(multi=True))):
        # a form sent empty fields: the same search at its clean, shareable address
        return redirect(state.href(), code=302)
    definition = load_definition("datasets")
    error: str | None = None
    page: DatasetPage | None = None
    params = SearchParams()
    status = 200
    try:
        args: dict[str, list[str]] = {}
        for key, value in state.pairs:
            args.setdefault(key, []).append(value)
        params = SearchParams.from_args(args, definition)
        page = runtime().datasets.search(identity(), params=params)
    except ValidationError as exc:
        error, status = exc.message, 400
    except CatalogueError as exc:
        if exc.status < 500:
            raise
        error, status = f"Search is unavailable right now: {exc.message}", exc.status
    names = page.organisations if page else {}
    api_query = state.query()
    return render(
        "web/search.html",
        status=status,
        q=params.text or (state.values("q") or [""])[-1],
        state=state,
        error=error,
        total=page.total if page else 0,
        hits=[hit_view(ds, page) for ds in page.items] if page else [],
        facets=facet_views(page, state) if page else [],
        active=active_filters(state, names),
        clear_url=State(tuple((k, v) for k, v in state.pairs if k in ("q", "sort", "size"))
                        ).href(),
        sort=page.sort if page else "relevance",
        sort_options=_sort_options(params),
        ranges={name: (state.values(name) or [""])[-1] for name in (*RANGES, *DATE_RANGES)},
        pagination=_pagination(state, params, page.total) if page else None,
        api_url=url_for("api_v1.search_datasets") + (f"?{api_query}" if api_query else ""),
        canonical=state.href(),
    )


def _sort_options(params: SearchParams) -> Sequence[tuple[str, str]]:
    # "best match" means nothing without words to match
    return SORT_OPTIONS if params.text else SORT_OPTIONS[1:]
