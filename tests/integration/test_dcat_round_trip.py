"""Round trip: a second catalogue harvests this one's export with our own DCAT harvester, over
real HTTP, and ends up with equal datasets (fields equal, graphs isomorphic), then follows
changes and withdrawals incrementally. The same through OAI-PMH."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from rdflib.compare import isomorphic

from catalogue.dcat.profiles.base import graph_from_ntriples
from catalogue.model.dataset import Dataset
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.privacy.aggregates import protect
from catalogue.runtime import Runtime
from catalogue.store.datasets import DatasetRepository
from catalogue.store.harvest import HarvestSource
from catalogue.testing.app_server import serve
from tests.conftest import _counter, _with_database, make_config
from tests.integration.test_dcat_export import post, world  # noqa: F401 - the fixture

#: attributes a harvest does not carry over: bookkeeping of the catalogue that holds it
_LOCAL = {"id", "organisation_id", "status", "content_hash", "created_at", "updated_at",
          "version", "graph", "source_id", "aggregates", "validation"}


@pytest.fixture
def second(pg_url: str, template_db: str, tmp_path: Path) -> Iterator[Runtime]:
    """Another catalogue instance with its own database: the harvesting node."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    config = make_config(tmp_path / "second", _with_database(pg_url, name))
    rt = Runtime(config).start(background_indexer=False)
    rt.identities.create_organisation(SYSTEM, Organisation("node-a", "Node A", "ES"))
    yield rt
    rt.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _base(runtime: Runtime, base: str) -> None:
    """Point the served instance's public base URL at where it really listens (in production:
    ``CATALOGUE_BASE_URL``), so its Hydra and OAI links lead back to it."""
    from catalogue.dcat.export import CatalogFacts
    from catalogue.services.export import ExportService

    runtime.config = runtime.config.replace(base_url=base)
    runtime._export = ExportService(runtime.database, base, CatalogFacts(
        f"{base}/dcat/catalog", "Node", "Test node", "Operator", base + "/", "ops@example.org"))


def _all(rt: Runtime) -> dict[str, Dataset]:
    with rt.database.transaction() as conn:
        repo = DatasetRepository(conn)
        ids = repo.all_ids()
        return {d.identifier: d for d in repo.get_many(ids)}


def _comparable(ds: Dataset) -> dict[str, Any]:
    values = {k: v for k, v in asdict(ds).items() if k not in _LOCAL}
    return json.loads(json.dumps(values, sort_keys=True, default=str))


def _aggregate_one(rt: Runtime, dataset_id: str) -> None:
    counts = {"subjects": 140, "studies": 420, "modalities": {"MR": 90},
              "body_parts": {"CHEST": 100}, "manufacturers": {}, "sexes": {"female": 70},
              "age_bands": {"50": 40, "55": 60}, "study_years": {"2021": 200}}
    with rt.database.transaction() as conn:
        conn.execute("UPDATE datasets SET aggregates = %s::jsonb, updated_at = now(), "
                     "version = version + 1 WHERE id = %s",
                     (json.dumps(protect(counts)), dataset_id))


def _assert_equal_catalogues(first: Runtime, second: Runtime) -> None:
    here = {k: d for k, d in _all(first).items() if d.status.value == "published"}
    there = {k: d for k, d in _all(second).items() if d.status.value == "published"}
    assert set(there) == set(here)
    for identifier, ds in here.items():
        exported = first.export.dataset_graph(ds, first.export.dataset_iri(asdict(ds)))
        theirs = there[identifier]
        assert theirs.graph is not None
        assert isomorphic(graph_from_ntriples(theirs.graph), exported), identifier
        # the harvested record reads exactly like ours with its aggregates applied: what we
        # published about it, and nothing else
        mine = first.export.profile.parse(exported, next(iter(
            first.export.profile.dataset_nodes(exported))), "node-a")
        assert _comparable(theirs) == _comparable(mine), identifier
        if not ds.aggregates:
            assert _comparable(theirs) == _comparable(ds), identifier


def _harvest_twice(runtime: Runtime, client: Any, world: dict[str, Any],  # noqa: F811
                   second: Runtime,
                   path: str) -> tuple[Any, Any]:
    """``second`` harvests ``runtime`` served over HTTP at ``path`` (a full run, after which
    both catalogues must be equal), then the source changes (one dataset edited, one withdrawn,
    one new) and ``second`` harvests again incrementally: (full run, incremental run)."""
    _aggregate_one(runtime, world["datasets"][4])
    with serve(runtime) as base:
        _base(runtime, base)
        source = second.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="node-a", kind="dcat", url=base + path, allow_private=True,
            config={"incremental": True}))
        origin = frozenset({base})
        full = second.harvest.run_source(SYSTEM, source.id, allowed_origins=origin)
        assert full.status == "completed", full.as_dict()
        assert full.counts["created"] == 23 and full.counts.get("invalid", 0) == 0
        _assert_equal_catalogues(runtime, second)

        tokens, ds = world["tokens"], world["datasets"]
        post(client, tokens["org-b"], "org-b", 0, version="2.0.0")
        assert client.delete(f"/api/v1/datasets/{ds[5]}",
                             headers={"Authorization": f"Bearer {tokens['org-a']}"}
                             ).status_code == 200
        post(client, tokens["org-a"], "org-a", 50)
        delta = second.harvest.run_source(SYSTEM, source.id, allowed_origins=origin)
    return full, delta


def test_hydra_round_trip_and_incremental_harvest(runtime: Runtime, client: Any,
                                                  world: dict[str, Any],  # noqa: F811
                                                  second: Runtime) -> None:
    _, delta = _harvest_twice(runtime, client, world, second, "/dcat/catalog?page_size=5")
    assert delta.status == "completed", delta.as_dict()
    assert delta.counts["seen"] == 2  # only what changed was fetched
    assert delta.counts["created"] == 1 and delta.counts["updated"] == 1
    assert delta.counts["withdrawn"] == 1
    there = _all(second)
    assert there["gen-000004"].number_of_individuals == 140  # the protected aggregate
    assert there["gen-000005"].status.value == "withdrawn"
    assert there["gen-000000"].fields.get("version") == "2.0.0" or \
        "2.0.0" in json.dumps(_comparable(there["gen-000000"]))
    _assert_equal_catalogues(runtime, second)


def test_oai_pmh_round_trip_and_incremental_harvest(runtime: Runtime, client: Any,
                                                    world: dict[str, Any],  # noqa: F811
                                                    second: Runtime) -> None:
    _, delta = _harvest_twice(runtime, client, world, second,
                              "/oai?verb=ListRecords&metadataPrefix=dcat_ap")
    assert delta.status == "completed", delta.as_dict()
    assert delta.counts["created"] == 1 and delta.counts["updated"] == 1
    assert delta.counts["withdrawn"] == 1
    assert _all(second)["gen-000005"].status.value == "withdrawn"
    _assert_equal_catalogues(runtime, second)
