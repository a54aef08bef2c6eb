"""Harvest benchmark: a generated EUCAIM catalogue served with Hydra paging over loopback HTTP.

Measured in one run, on the same pages:
- baseline A: plain rdflib parsing the pages alone (Turtle);
- baseline B: the harvester's general parser (``parse_rdf``: Oxigraph into an rdflib graph),
  parsing alone; the oxrdflib plugin parsing into an Oxigraph store (the issue's reference for
  "a faster parser"); and Oxigraph's streaming parser alone, building nothing (the fast cut
  starts from it, so this is the floor: parsing without any harvesting work);
- the full harvest (fetch, parse, split, hash, upsert, outbox) with SHACL validation off;
- SHACL validation cost, separately, on new records (what a first harvest pays);
- a re-harvest of the unchanged source (conditional requests: what a daily run pays).
Ratios are harvest datasets/s over each baseline's datasets/s.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from rdflib import Graph

from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.profiles import get_profile
from catalogue.dcat.validation import get_validator
from catalogue.harvest.base import RunContext
from catalogue.harvest.dcat import DcatHarvester
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.services.harvest import HarvestService
from catalogue.testing.dcat_generator import record
from catalogue.testing.dcat_server import DcatServer, DcatSource, generate_records


def _pages(url: str) -> list[bytes]:
    pages: list[bytes] = []
    nxt: str | None = url
    harvester = DcatHarvester()
    while nxt:
        with urllib.request.urlopen(nxt, timeout=60) as resp:  # noqa: S310 - loopback only
            body = resp.read()
        pages.append(body)
        graph = parse_rdf(body, content_type="text/turtle")
        nxt = harvester._next(graph, nxt)
    return pages


def run(
    runtime: Runtime, datasets: int = 10_000, page_size: int = 100, validation_sample: int = 300
) -> dict[str, Any]:
    """Run the benchmark against ``runtime``'s store; return figures and ratios."""
    try:
        runtime.identities.create_organisation(SYSTEM, Organisation("bench-org", "Bench", "ES"))
    except Exception:  # noqa: S110 - already there from an earlier run
        pass
    source = DcatSource(generate_records(datasets, record), page_size=page_size)
    with DcatServer(source) as server:
        pages = _pages(server.url)
        started = time.perf_counter()
        for body in pages:
            Graph().parse(data=body, format="turtle")
        rdflib_s = time.perf_counter() - started
        started = time.perf_counter()
        for body in pages:
            parse_rdf(body, content_type="text/turtle")
        fastest_s = time.perf_counter() - started
        started = time.perf_counter()
        for body in pages:  # the reference: the oxrdflib plugin into an Oxigraph store
            Graph(store="Oxigraph").parse(data=body, format="ox-turtle")
        oxrdflib_store_s = time.perf_counter() - started
        import pyoxigraph

        started = time.perf_counter()
        for body in pages:
            for _quad in pyoxigraph.parse(body, format=pyoxigraph.RdfFormat.TURTLE):
                pass
        oxigraph_raw_s = time.perf_counter() - started

        service = HarvestService(runtime.database)
        harvester = DcatHarvester()
        ctx = RunContext(
            db=runtime.database,
            organisation_id="bench-org",
            url=server.url,
            allowed_origins=frozenset({server.origin}),
            validate=False,
        )
        with runtime.database.transaction() as conn:
            run_row = conn.execute(
                "INSERT INTO harvest_runs (organisation_id, kind) VALUES ('bench-org', 'dcat') "
                "RETURNING id"
            ).fetchone()
        assert run_row is not None
        ctx.run_id = str(run_row["id"])
        started = time.perf_counter()
        harvester.run(ctx)
        harvest_s = time.perf_counter() - started
        created = ctx.counts["created"] + ctx.counts["updated"]

        # validation cost on new records: the description graphs a first harvest validates
        profile, validator = get_profile(), get_validator()
        graph = profile.canonicalise(parse_rdf(pages[0], content_type="text/turtle"))
        nodes = profile.dataset_nodes(graph)
        descriptions = [(profile.description(graph, n), n) for n in nodes]
        sample = (descriptions * (validation_sample // max(len(descriptions), 1) + 1))[
            :validation_sample
        ]
        started = time.perf_counter()
        for description, node in sample:
            validator.validate_dataset(description, node)
        validate_s = time.perf_counter() - started

        # unchanged re-harvest through the service (conditional requests, nothing written)
        started = time.perf_counter()
        again = service.run_url(
            SYSTEM, "dcat", server.url, "bench-org", allowed_origins=frozenset({server.origin})
        )
        again_s = time.perf_counter() - started
        service.run_url(
            SYSTEM, "dcat", server.url, "bench-org", allowed_origins=frozenset({server.origin})
        )
        started = time.perf_counter()
        third = service.run_url(
            SYSTEM, "dcat", server.url, "bench-org", allowed_origins=frozenset({server.origin})
        )
        third_s = time.perf_counter() - started

    triples = sum(len(Graph().parse(data=b, format="turtle")) for b in pages[:3]) / 3 * len(pages)
    harvest_rate = datasets / harvest_s
    return {
        "datasets": datasets,
        "pages": len(pages),
        "page_size": page_size,
        "approx_triples": int(triples),
        "rdflib_parse_s": round(rdflib_s, 3),
        "fastest_parse_s": round(fastest_s, 3),
        "harvest_s": round(harvest_s, 3),
        "harvest_datasets_per_s": round(harvest_rate, 1),
        "stored": created,
        "stage_seconds": {k: round(v, 3) for k, v in ctx.timings.items()},
        "ratio_vs_rdflib_parse": round(harvest_rate / (datasets / rdflib_s), 2),
        "ratio_vs_fastest_parse": round(harvest_rate / (datasets / fastest_s), 2),
        "oxrdflib_store_parse_s": round(oxrdflib_store_s, 3),
        "ratio_vs_oxrdflib_store_parse": round(harvest_rate / (datasets / oxrdflib_store_s), 2),
        "oxigraph_raw_parse_s": round(oxigraph_raw_s, 3),
        "ratio_vs_oxigraph_raw_parse": round(harvest_rate / (datasets / oxigraph_raw_s), 3),
        "shacl_validations_per_s": round(len(sample) / validate_s, 1),
        "shacl_ms_per_record": round(validate_s / len(sample) * 1000, 2),
        "reharvest_unchanged_s": round(again_s, 3),
        "reharvest_counts": again.counts,
        "third_harvest_unchanged_s": round(third_s, 3),
        "third_harvest_counts": third.counts,
    }
