"""The DCAT export benchmark on a small catalogue: real PostgreSQL, the app over HTTP, the CLI
dump in its own process. Structure and sanity only (no timing thresholds)."""

from __future__ import annotations

from typing import Any

from catalogue.bench import export
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.namespaces import DCAT
from catalogue.runtime import Runtime
from catalogue.testing.app_server import serve


def test_small_run_exports_every_dataset_in_every_format(runtime: Runtime) -> None:
    figures: dict[str, Any] = export.run(runtime, datasets=90, small=30, page_size=40,
                                         sample=30)
    assert figures["datasets"] == 90 and figures["small"] == 30
    assert set(figures["formats"]) == {"nt", "turtle", "rdfxml", "jsonld"}
    for fmt, entry in figures["formats"].items():
        for key in ("cold_per_s", "warm_per_s", "oxigraph_alone_per_s", "ratio_warm"):
            assert entry[key] > 0, (fmt, key)
        assert entry["bytes"] > 90 * 2000, fmt  # whole descriptions, not stubs
    for fmt in ("nt", "turtle"):
        assert figures["rss_small"][fmt]["peak_mb"] > 20  # a real process was measured
        assert figures["rss_full"][fmt]["ratio_to_small"] > 0
    assert "peak RSS" in export.table(figures)
    # the catalogue the bench made: 90 distinct datasets, each exported exactly once
    public = runtime.config.public_base_url
    with serve(runtime) as base:
        _, _, _ = export.export_http(base, "turtle", 40, public)
        import urllib.request

        seen: list[str] = []
        url: str | None = f"{base}/dcat/catalog?format=nt&page_size=40"
        while url:
            with urllib.request.urlopen(url) as resp:
                graph = parse_rdf(resp.read(), content_type="application/n-triples")
                link = resp.headers.get("Link", "")
            seen += [str(o) for o in graph.objects(None, DCAT.dataset)]
            match = export._NEXT.search(link)
            url = match.group(1).replace(public, base, 1) if match else None
    assert len(seen) == len(set(seen)) == 90
