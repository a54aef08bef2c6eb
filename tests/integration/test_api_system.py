"""Health, readiness, OpenAPI, outbox indexing and search-engine outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalogue.api.app import create_app
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from tests.conftest import free_port, make_config


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").json["status"] == "ok"
    r = client.get("/readyz")
    assert r.status_code == 200
    details = r.json["details"]
    assert details["store"]["ok"] and details["store"]["schema_version"] >= 1
    assert details["search"]["engine"] == "tantivy"
    assert details["indexer"]["pending"] == 0


def test_openapi_documents_every_api_route(app: Any, client: Any) -> None:
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") and rule.rule not in ("/healthz", "/readyz"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} missing from OpenAPI"
    error = doc["components"]["schemas"]["Error"]
    assert "error" in error["properties"]
    post = doc["paths"]["/api/v1/datasets"]["post"]
    assert post["security"] == [{"bearer": []}]
    assert "401" in post["responses"] and "403" in post["responses"]
    page = client.get("/api/docs")
    assert page.status_code == 200 and b"openapi.json" in page.data


_free_port = free_port


def test_search_engine_down_writes_continue_and_readyz_503(tmp_path: Path, db_url: str) -> None:
    """With the search engine unreachable, writes still commit (the outbox grows), reads of the
    search answer 503 with a clear error, and /readyz says what is down."""
    config = make_config(
        tmp_path, db_url, search_url=f"http://127.0.0.1:{_free_port()}", search_timeout=1.0
    )
    runtime = Runtime(config).start()
    try:
        client = create_app(runtime=runtime, background_indexer=False).test_client()
        runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A"))
        token = runtime.identities.issue_token(
            SYSTEM,
            runtime.identities.create_user(SYSTEM, _user("prov", "provider", "org-a")).username,
        ).secret
        r = client.post(
            "/api/v1/datasets",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "identifier": "x",
                "organisation_id": "org-a",
                "title": {"en": "X"},
                "status": "published",
            },
        )
        assert r.status_code == 201
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["details"]["store"]["ok"] is True
        assert ready.json["details"]["search"]["ok"] is False
        assert ready.json["details"]["indexer"]["pending"] == 1
        s = client.get("/api/v1/datasets?q=x")
        assert s.status_code == 503
        assert s.json["error"]["code"] == "search_unavailable"
        # the dataset itself is served from PostgreSQL
        assert client.get(f"/api/v1/datasets/{r.json['id']}").status_code == 200
    finally:
        runtime.close()


def _user(name: str, role: str, org: str | None) -> Any:
    from catalogue.model.identity import Role, User

    return User("", name, Role(role), org)


def test_outbox_drains_into_the_index_and_rebuild_matches(client: Any, runtime: Runtime) -> None:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    from catalogue.model.dataset import Dataset, DatasetStatus

    for i in range(30):
        runtime.datasets.save(
            SYSTEM,
            Dataset(
                identifier=f"d{i}",
                organisation_id="org-a",
                title={"en": f"Lung study {i}"},
                status=DatasetStatus.PUBLISHED if i % 3 else DatasetStatus.DRAFT,
                modalities=["CT"] if i % 2 else ["MR"],
            ),
        )
    assert runtime.indexer is not None
    assert runtime.indexer.lag()["pending"] == 30
    assert runtime.indexer.drain() == 30
    assert runtime.indexer.lag()["pending"] == 0
    assert runtime.indexer.drain() == 0  # idempotent, nothing left
    public = client.get("/api/v1/datasets?q=lung&size=100").json
    assert public["total"] == 20
    ct = client.get("/api/v1/datasets?modalities=CT&size=100").json
    assert ct["total"] == 10  # odd i, minus drafts (i % 3 == 0): 15 - 5
    facets = {f["name"]: {b["key"]: b["count"] for b in f["buckets"]} for f in public["facets"]}
    assert facets["modalities"] == {"CT": 10, "MR": 10}
    before = runtime.search.current_index(runtime.search.logical_name("datasets"))  # type: ignore[union-attr]
    result = runtime.indexer.rebuild()
    assert result["documents"] == 30 and result["previous"] == before
    assert client.get("/api/v1/datasets?q=lung&size=100").json["total"] == 20
