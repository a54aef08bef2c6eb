"""The DCAT export benchmark on a small catalogue: real PostgreSQL, the app over HTTP, the CLI
dump in its own process. Structure and sanity only (no timing thresholds)."""

from __future__ import annotations

import urllib.request
from collections import Counter
from typing import Any

from rdflib import URIRef

from catalogue.bench import export
from catalogue.dcat import export as rdf
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.namespaces import DCAT, DCT
from catalogue.runtime import Runtime
from catalogue.testing.app_server import serve

DATASETS, SMALL, PAGE = 300, 100, 70


def _listed(base: str, public: str, fmt: str) -> tuple[Counter[str], int]:
    """Each dataset IRI the whole export in ``fmt`` lists (with how many times), and how many
    of them are described (titled) on their page. Every page must parse on its own."""
    listed: Counter[str] = Counter()
    described = 0
    url: str | None = f"{base}/dcat/catalog?format={fmt}&page_size={PAGE}"
    while url:
        with urllib.request.urlopen(url) as resp:
            graph = parse_rdf(resp.read(), content_type=rdf.EXPORT_FORMATS[fmt][0])
            match = export.NEXT.search(resp.headers.get("Link", ""))
        iris = [str(o) for o in graph.objects(None, DCAT.dataset)]
        listed.update(iris)
        described += sum(1 for iri in iris if (URIRef(iri), DCT.title, None) in graph)
        url = match.group(1).replace(public, base, 1) if match else None
    return listed, described


def test_small_run_exports_every_dataset_once_in_every_format(runtime: Runtime) -> None:
    figures: dict[str, Any] = export.run(runtime, datasets=DATASETS, small=SMALL,
                                         page_size=PAGE, sample=60, rdflib_sample=20)
    assert figures["datasets"] == DATASETS and figures["small"] == SMALL
    assert set(figures["formats"]) == set(rdf.EXPORT_FORMATS)
    for fmt, entry in figures["formats"].items():
        for key in ("warm_per_s", "repeat_per_s", "changed_per_s", "shifted_per_s",
                    "cold_per_s", "cold_slice_repeat_per_s", "oxigraph_alone_per_s",
                    "stored_alone_per_s", "ratio_warm", "ratio_repeat", "ratio_changed",
                    "ratio_shifted", "ratio_stored_alone"):
            assert entry[key] > 0, (fmt, key)
        # a ratio, rounded: a first render can be a thousandth of Oxigraph alone
        cold_ratio = entry["cold_per_s"] / entry["oxigraph_alone_per_s"]
        assert abs(entry["ratio_cold"] - cold_ratio) < 0.002, fmt
        assert len(entry["warm_rounds_per_s"]) == export.ROUNDS
        assert entry["warm_per_s"] == max(entry["warm_rounds_per_s"])
        assert entry["repeat_per_s"] == max(entry["repeat_rounds_per_s"])
        assert entry["changed_per_s"] == max(entry["changed_rounds_per_s"])
        assert entry["shifted_per_s"] == max(entry["shifted_rounds_per_s"])
        assert entry["pages"] == -(-DATASETS // PAGE)
        assert entry["cold_datasets"] == DATASETS // export.PROVIDERS  # one provider's share
        assert entry["bytes_per_dataset"] > 2000, fmt  # whole descriptions, not stubs
    assert figures["triples_per_dataset"] > 40 and figures["baseline_sample"] == 60
    assert figures["first_export_per_s"] > 0 and figures["load_per_s"] > 0
    assert set(figures["rss"]) == {"first_export_turtle", "warm_turtle", "warm_nt"}
    for state in figures["rss"].values():
        assert state["small_mb"] > 20 and state["full_mb"] > 20  # real processes measured
        assert state["ratio"] > 0
    assert all(v > 0 for v in figures["rdflib_alone_per_s"].values())
    assert "peak RSS" in export.table(figures)

    # the catalogue the bench made: every dataset exported exactly once, described, per format
    public = runtime.config.public_base_url
    with serve(runtime) as base:
        for fmt in rdf.EXPORT_FORMATS:
            listed, described = _listed(base, public, fmt)
            assert len(listed) == DATASETS and set(listed.values()) == {1}, fmt
            assert described == DATASETS, fmt
