"""Harvest sources and runs through the HTTP API, and RDF uploads by providers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.testing.dcat_generator import record
from catalogue.testing.dcat_server import DcatServer, DcatSource, generate_records

DATA = Path(__file__).resolve().parents[1] / "data" / "dcat"


@pytest.fixture
def tokens(runtime: Runtime) -> dict[str, str]:
    ids = runtime.identities
    ids.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    ids.create_organisation(SYSTEM, Organisation("org-b", "B", "DE"))
    out = {}
    for name, role, org in (("adm", Role.ADMIN, None), ("prov-a", Role.PROVIDER, "org-a"),
                            ("prov-b", Role.PROVIDER, "org-b"), ("res", Role.RESEARCHER, None)):
        ids.create_user(SYSTEM, User("", name, role, org))
        out[name] = ids.issue_token(SYSTEM, name).secret
    return out


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_run_and_inspect_a_source(client: Any, runtime: Runtime,
                                           tokens: dict[str, str]) -> None:
    source = DcatSource(generate_records(25, record), page_size=10)
    with DcatServer(source) as server:
        # a provider may not allow private addresses; the admin registers the loopback source
        r = client.post("/api/v1/harvest/sources", headers=h(tokens["prov-a"]),
                        json={"organisation_id": "org-a", "kind": "dcat", "url": server.url,
                              "allow_private": True})
        assert r.status_code == 403
        r = client.post("/api/v1/harvest/sources", headers=h(tokens["adm"]),
                        json={"organisation_id": "org-a", "kind": "dcat", "url": server.url,
                              "allow_private": True, "schedule": "@daily"})
        assert r.status_code == 201, r.json
        source_id = r.json["id"]
        assert r.json["next_run_at"] is not None
        # other organisations can neither see nor run it
        assert client.get(f"/api/v1/harvest/sources/{source_id}",
                          headers=h(tokens["prov-b"])).status_code == 404
        assert client.post(f"/api/v1/harvest/sources/{source_id}/run?wait=true",
                           headers=h(tokens["prov-b"])).status_code == 404
        assert client.post(f"/api/v1/harvest/sources/{source_id}/run",
                           headers=h(tokens["res"])).status_code == 404
        # the owning provider runs it synchronously
        r = client.post(f"/api/v1/harvest/sources/{source_id}/run?wait=true",
                        headers=h(tokens["prov-a"]))
        assert r.status_code == 200, r.json
        assert r.json["status"] == "completed" and r.json["counts"]["created"] == 25
        # and in the background
        r = client.post(f"/api/v1/harvest/sources/{source_id}/run", headers=h(tokens["prov-a"]))
        assert r.status_code == 202
        run_id = r.json["run_id"]
        for _ in range(100):
            run = client.get(f"/api/v1/harvest/runs/{run_id}", headers=h(tokens["prov-a"])).json
            if run["status"] != "running":
                break
            time.sleep(0.1)
        assert run["status"] == "completed" and run["counts"]["unchanged"] == 25
        runs = client.get(f"/api/v1/harvest/sources/{source_id}/runs",
                          headers=h(tokens["prov-a"])).json
        assert [x["status"] for x in runs] == ["completed", "completed"]
        assert client.get(f"/api/v1/harvest/runs/{run_id}",
                          headers=h(tokens["prov-b"])).status_code == 404
        listed = client.get("/api/v1/harvest/sources", headers=h(tokens["prov-b"])).json
        assert listed == []


def test_registered_urls_must_be_http(client: Any, tokens: dict[str, str]) -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/x", "gopher://x"):
        r = client.post("/api/v1/harvest/sources", headers=h(tokens["adm"]),
                        json={"organisation_id": "org-a", "kind": "dcat", "url": url})
        assert r.status_code == 400, url


def test_provider_uploads_turtle_and_sees_the_validation_report(
        client: Any, runtime: Runtime, tokens: dict[str, str]) -> None:
    bad = (DATA / "health-ri" / "invalid" / "dataset-nodescription.ttl").read_bytes()
    r = client.post("/api/v1/datasets?organisation_id=org-a&status=published", data=bad,
                    content_type="text/turtle", headers=h(tokens["prov-a"]))
    assert r.status_code == 400
    assert any("description" in (i.get("path") or "") + i["message"]
               for i in r.json["error"]["details"])
    r = client.post("/api/v1/datasets?organisation_id=org-a", data=bad,
                    content_type="text/turtle", headers=h(tokens["prov-a"]))
    assert r.status_code == 201, r.json
    assert r.json["status"] == "draft"
    assert any("description" in (i.get("path") or "") + i["message"]
               for i in r.json["validation"] if i["severity"] == "violation")
    # publishing the invalid draft is refused with the report
    p = client.post(f"/api/v1/datasets/{r.json['id']}/publish", headers=h(tokens["prov-a"]))
    assert p.status_code == 400 and p.json["error"]["details"]
    # another provider can neither upload into org-a nor see the draft
    r2 = client.post("/api/v1/datasets?organisation_id=org-a", data=bad,
                     content_type="text/turtle", headers=h(tokens["prov-b"]))
    assert r2.status_code == 403
    assert client.get(f"/api/v1/datasets/{r.json['id']}",
                      headers=h(tokens["prov-b"])).status_code == 404


def test_broken_rdf_upload_is_a_clear_400(client: Any, tokens: dict[str, str]) -> None:
    r = client.post("/api/v1/datasets?organisation_id=org-a", data=b"<a> <b> <c",
                    content_type="text/turtle", headers=h(tokens["prov-a"]))
    assert r.status_code == 400
    assert r.json["error"]["code"] == "invalid_rdf"
    xxe = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
           b' rdf:about="http://x/"><rdf:value>&x;</rdf:value></rdf:Description></rdf:RDF>')
    r = client.post("/api/v1/datasets?organisation_id=org-a", data=xxe,
                    content_type="application/rdf+xml", headers=h(tokens["prov-a"]))
    assert r.status_code == 400
    assert "root:" not in r.get_data(as_text=True)
