"""Harvest benchmark: a generated EUCAIM catalogue served with Hydra paging over loopback HTTP.

Measured in one run, on the same pages:
- baseline A: plain rdflib parsing the pages alone (Turtle);
- baseline B: the harvester's general parser (``parse_rdf``: Oxigraph into an rdflib graph),
  parsing alone; the oxrdflib plugin parsing into an Oxigraph store (the issue's reference for
  "a faster parser"); and Oxigraph's streaming parser alone, building nothing (the fast cut
  starts from it, so this is the floor: parsing without any harvesting work);
- the full harvest (fetch, parse, split, hash, upsert, outbox) with SHACL validation off;
- SHACL validation cost, separately, on new records (what a first harvest pays);
- a re-harvest of the unchanged source (conditional requests: what a daily run pays);
- two of the harvest's own steps alone, each against Oxigraph's streaming parser: reading the
  records (parse, cut, hash, profile) in one process, and storing the records already read
  (the harvest's bulk write: ``COPY`` of the datasets and their distributions and the outbox).
  A harvest cannot run faster than its storing step alone, so that ratio bounds the harvest's
  ratio against the parser.
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
from catalogue.harvest.dcat import DcatHarvester, Extracted, _init_worker, _work
from catalogue.model.dataset import DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.services.harvest import HarvestService
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository
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


def _steps_alone(runtime: Runtime, pages: list[bytes], url: str) -> tuple[float, float, int]:
    """(seconds reading every record in this process, seconds storing them, records stored).

    Reading is the workers' task run here, page by page; storing is the harvester's bulk write
    of what was read, page by page (one transaction each), for an organisation of its own whose
    rows are deleted afterwards.
    """
    try:
        runtime.identities.create_organisation(
            SYSTEM, Organisation("bench-store-alone", "Bench (storing alone)", "ES"))
    except Exception:  # noqa: S110 - already there from an earlier run
        pass
    _init_worker("eucaim", {}, False)
    started = time.perf_counter()
    read: list[Extracted] = [_work(body, url, "bench-store-alone") for body in pages]
    read_s = time.perf_counter() - started
    stored = 0
    started = time.perf_counter()
    for extracted in read:
        datasets = [r.dataset for r in extracted.records]
        with runtime.database.transaction() as conn:
            for ds in datasets:
                ds.status = DatasetStatus.PUBLISHED
            DatasetRepository(conn).write_many(datasets, [])
            enqueue(conn, "dataset", [ds.id for ds in datasets if ds.id])
        stored += len(datasets)
    store_s = time.perf_counter() - started
    with runtime.database.transaction() as conn:
        conn.execute("DELETE FROM outbox WHERE entity = 'dataset' AND entity_id IN "
                     "(SELECT id::text FROM datasets WHERE organisation_id = 'bench-store-alone')")
        conn.execute("DELETE FROM datasets WHERE organisation_id = 'bench-store-alone'")
    return read_s, store_s, stored


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

        read_alone_s, store_alone_s, stored_alone = _steps_alone(runtime, pages, server.url)

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
        "read_alone_one_process_s": round(read_alone_s, 3),
        "ratio_read_alone_vs_oxigraph_raw_parse": round(oxigraph_raw_s / read_alone_s, 3),
        "store_alone_datasets": stored_alone,
        "store_alone_s": round(store_alone_s, 3),
        "store_alone_datasets_per_s": round(stored_alone / store_alone_s, 1),
        "ratio_store_alone_vs_oxigraph_raw_parse": round(
            (stored_alone / store_alone_s) / (datasets / oxigraph_raw_s), 3),
        "shacl_validations_per_s": round(len(sample) / validate_s, 1),
        "shacl_ms_per_record": round(validate_s / len(sample) * 1000, 2),
        "reharvest_unchanged_s": round(again_s, 3),
        "reharvest_counts": again.counts,
        "third_harvest_unchanged_s": round(third_s, 3),
        "third_harvest_counts": third.counts,
    }
