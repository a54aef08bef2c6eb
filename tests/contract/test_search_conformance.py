"""One conformance suite for every search backend: embedded tantivy and a real 3-node
OpenSearch cluster must give identical totals, hits and facet counts on a realistic corpus,
and those must equal the ground truth computed here from the documents themselves."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from catalogue.search.base import SearchBackend
from catalogue.search.indexer import dataset_document
from catalogue.search.mappings import load_definition
from catalogue.search.query import (
    Exists,
    FacetRequest,
    Not,
    Range,
    SearchRequest,
    SearchResult,
    Terms,
    lower,
)
from catalogue.services.search import SearchParams, build_request
from catalogue.testing.search_corpus import generate_datasets
from tests.contract.engines import Engines, loaded_engines

CORPUS_SIZE = 3000
PUBLIC = {"filters": (Terms("status", ("published",)),)}
PROVIDER = {"any_of": ((Terms("status", ("published",)),
                        Terms("organisation_id", ("prov-de-01",))),)}


def _documents() -> list[dict[str, Any]]:
    docs = []
    for i, ds in enumerate(generate_datasets(CORPUS_SIZE, seed=7)):
        ds.id = str(uuid.UUID(int=i + 1))
        ds.updated_at = datetime(2025, 1, 1, tzinfo=UTC)
        docs.append(dataset_document(ds))
    return docs


DOCS = _documents()


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory,
            opensearch_urls: list[str]) -> Iterator[Engines]:
    with loaded_engines(tmp_path_factory.mktemp("conformance"), opensearch_urls, "datasets",
                        DOCS) as found:
        yield found


def _params(**kwargs: Any) -> SearchParams:
    args = {k: (v if isinstance(v, list) else [str(v)]) for k, v in kwargs.items()}
    return SearchParams.from_args(args, load_definition("datasets"))


# (name, request): filters, facets, text in several languages, codes, ranges, sorts
QUERIES: list[tuple[str, SearchRequest]] = [
    ("everything", build_request(_params(size=50), PUBLIC)),
    ("provider view", build_request(_params(size=50), PROVIDER)),
    ("lung concept with descendants", build_request(_params(conditions="snomed:93880001"), PUBLIC)),
    ("lung concept exact", build_request(_params(conditions="snomed:93880001",
                                                 descendants="false"), PUBLIC)),
    ("ICD-10 code selects the concept", build_request(_params(conditions="C34.9"), PUBLIC)),
    ("multi-select OR within, AND across",
     build_request(_params(conditions=["snomed:254837009", "snomed:399068003"],
                           modalities=["MR", "PT"], countries="DE"), PUBLIC)),
    ("body part hierarchy", build_request(_params(body_parts="CHEST"), PUBLIC)),
    ("text: lung", build_request(_params(q="lung", size=100), PUBLIC)),
    ("text: German", build_request(_params(q="Lungenkrebs", size=100), PUBLIC)),
    ("text: French", build_request(_params(q="cancer du poumon", size=100), PUBLIC)),
    ("text: stemmed plural", build_request(_params(q="tumours radiomics", size=100), PUBLIC)),
    ("text: SNOMED code", build_request(_params(q="254626006", size=100), PUBLIC)),
    ("text + facet", build_request(_params(q="breast", modalities="MG", size=100), PUBLIC)),
    ("ranges", build_request(_params(individuals_min=200, individuals_max=5000, age_min=60,
                                     size=100), PUBLIC)),
    ("dates", build_request(_params(modified_since="2022-01-01", acquired_to="2015-12-31",
                                    size=100), PUBLIC)),
    ("sorted by size", build_request(_params(sort="-number_of_individuals", size=40), PUBLIC)),
    ("sorted by modified, page 3", build_request(_params(sort="modified", size=25, page=3),
                                                 PUBLIC)),
    ("exists / not", SearchRequest(filters=(Exists("licence"), Not(Terms("countries", ("ES",)))),
                                   size=100, sort="-modified")),
]


def _normalised(result: SearchResult, sorted_request: bool) -> dict[str, Any]:
    return {
        "total": result.total,
        "ids": result.ids if sorted_request else sorted(result.ids),
        "facets": {k: sorted(v, key=lambda kv: (-kv[1], kv[0])) for k, v in result.facets.items()},
    }


@pytest.mark.opensearch
@pytest.mark.parametrize(("name", "request_"), QUERIES, ids=[q[0] for q in QUERIES])
def test_engines_agree(engines: dict[str, tuple[SearchBackend, str]], name: str,
                       request_: SearchRequest) -> None:
    sorted_request = request_.sort is not None
    if not sorted_request:  # relevance order legitimately differs: compare whole hit sets
        request_ = dataclasses.replace(request_, size=CORPUS_SIZE, offset=0)
    results = {engine: backend.search(alias, request_)
               for engine, (backend, alias) in engines.items()}
    a = _normalised(results["tantivy"], sorted_request)
    b = _normalised(results["opensearch"], sorted_request)
    assert a == b
    assert a["total"] > 0, f"{name}: the corpus should have hits for this query"


def _matches(doc: dict[str, Any], flt: Any) -> bool:
    definition = load_definition("datasets")
    flt = lower(flt, definition)
    if isinstance(flt, Not):
        return not _matches(doc, flt.filter)
    value = doc.get(flt.field)
    values = value if isinstance(value, list) else ([] if value is None else [value])
    if isinstance(flt, Terms):
        return any(v in flt.values for v in values)
    if isinstance(flt, Exists):
        return bool(values)
    if isinstance(flt, Range):
        if not values:
            return False
        number = values[0]
        if isinstance(number, datetime):
            number = number.timestamp()
        elif hasattr(number, "year"):
            number = datetime(number.year, number.month, number.day, tzinfo=UTC).timestamp()
        return (flt.gte is None or number >= flt.gte) and (flt.lte is None or number <= flt.lte)
    raise AssertionError(flt)


def _truth(request: SearchRequest) -> tuple[list[dict[str, Any]], dict[str, Counter[str]]]:
    def base(doc: dict[str, Any]) -> bool:
        return all(_matches(doc, f) for f in request.filters) and all(
            any(_matches(doc, f) for f in group) for group in request.any_of)

    hits = [d for d in DOCS if base(d) and all(_matches(d, f) for _, f in request.facet_filters)]
    counts: dict[str, Counter[str]] = {}
    for facet in request.facet_requests():
        counter: Counter[str] = Counter()
        for doc in DOCS:
            if base(doc) and all(_matches(doc, f) for n, f in request.facet_filters
                                 if n != facet.name):
                value = doc.get(facet.field)
                counter.update(value if isinstance(value, list) else [] if value is None
                               else [value])
        counts[facet.name] = counter
    return hits, counts


@pytest.mark.parametrize("engine", ["tantivy", pytest.param("opensearch",
                                                            marks=pytest.mark.opensearch)])
@pytest.mark.parametrize(("name", "request_"), [q for q in QUERIES if q[1].text is None],
                         ids=[q[0] for q in QUERIES if q[1].text is None])
def test_filters_and_facets_equal_ground_truth(engines: dict[str, tuple[SearchBackend, str]],
                                               engine: str, name: str,
                                               request_: SearchRequest) -> None:
    backend, alias = engines[engine]
    result = backend.search(alias, request_)
    hits, counts = _truth(request_)
    assert result.total == len(hits)
    for facet, counter in counts.items():
        assert dict(result.facets[facet]) == dict(counter), facet
    if request_.sort:
        key = {"number_of_individuals": "individuals_key", "modified": "modified_key"}[
            request_.sort.lstrip("-")]
        ordered = sorted(hits, key=lambda d: d[key], reverse=request_.sort.startswith("-"))
        page = ordered[request_.offset:request_.offset + request_.size]
        assert result.ids == [d["id"] for d in page]


@pytest.mark.parametrize("engine", ["tantivy", pytest.param("opensearch",
                                                            marks=pytest.mark.opensearch)])
def test_search_after_walks_every_hit_once(engines: dict[str, tuple[SearchBackend, str]],
                                           engine: str) -> None:
    backend, alias = engines[engine]
    request = build_request(_params(sort="-modified", size=100), PUBLIC)
    seen: list[str] = []
    after: int | None = None
    published = [d for d in DOCS if d["status"] == "published"]
    facets = (FacetRequest("modalities", "modalities", size=50),)
    first_facets = None
    while True:
        page = backend.search(alias, SearchRequest(
            filters=request.filters, sort=request.sort, size=100, search_after=after,
            facets=facets))
        # the cursor moves the hits only: total and facet counts describe the whole listing
        assert page.total == len(published)
        first_facets = first_facets or page.facets
        assert page.facets == first_facets
        seen.extend(page.ids)
        if len(page.ids) < 100:
            break
        after = page.cursors[-1]
    assert len(seen) == len(set(seen)) == len(published)
    expected = sorted(published, key=lambda d: d["modified_key"], reverse=True)
    assert seen == [d["id"] for d in expected]


def test_text_finds_descendants_in_every_language(
        engines: dict[str, tuple[SearchBackend, str]]) -> None:
    """'lung', 'Lungenkrebs', 'cancer du poumon', a SNOMED and an ICD-10 code all find the
    datasets coded with any lung-cancer descendant (e.g. adenocarcinoma of lung only)."""
    backend, alias = engines["tantivy"]
    coded_adeno = {d["id"] for d in DOCS if d["status"] == "published"
                   and "snomed:254626006" in d["conditions"]}
    assert coded_adeno, "the corpus has datasets coded with adenocarcinoma of lung"
    for q in ("lung", "Lungenkrebs", "cancer du poumon", "93880001", "C34"):
        request = dataclasses.replace(build_request(_params(q=q), PUBLIC), size=CORPUS_SIZE)
        found = backend.search(alias, request)
        assert coded_adeno <= set(found.ids), q


def test_corpus_sanity() -> None:
    assert len(DOCS) == CORPUS_SIZE
    path_counts = Counter(c for d in DOCS for c in d["conditions_path"])
    assert path_counts["snomed:93880001"] > path_counts["snomed:254626006"] > 0
    unknown = [c for d in DOCS for c in d["conditions"] if c.startswith("local:")]
    assert unknown, "unknown local codes are kept as given"
