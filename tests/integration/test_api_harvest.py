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


def _register(client: Any, token: str, url: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/api/v1/harvest/sources", headers=h(token),
                    json={"organisation_id": "org-a", "kind": "dcat", "url": url, **extra})
    assert r.status_code == 201, r.json
    return dict(r.json)


def test_a_source_is_changed_paused_and_resumed_by_its_organisation(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    created = _register(client, tokens["prov-a"], "https://catalogue.example.org/dcat",
                        name="hospital", schedule="@daily")
    url = f"/api/v1/harvest/sources/{created['id']}"
    # not another organisation's, not a researcher's
    for who in ("prov-b", "res"):
        assert client.patch(url, headers=h(tokens[who]), json={"name": "x"}).status_code == 404
    assert client.patch(url, json={"name": "x"}).status_code == 401
    # paused: no longer due; resumed: due at once
    r = client.patch(url, headers=h(tokens["prov-a"]), json={"enabled": False})
    assert r.status_code == 200, r.json
    assert r.json["enabled"] is False
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE harvest_sources SET next_run_at = now() - interval '1 hour'")
    assert created["id"] not in [s.id for s in _due(runtime)]
    r = client.patch(url, headers=h(tokens["prov-a"]), json={"enabled": True})
    assert r.json["enabled"] is True
    assert created["id"] in [s.id for s in _due(runtime)]
    # renamed, another schedule, strict; "" or null schedule: on demand
    r = client.patch(url, headers=h(tokens["prov-a"]),
                     json={"name": "hospital (prod)", "schedule": "every 6h",
                           "validation_mode": "strict"})
    assert (r.json["name"], r.json["schedule"], r.json["validation_mode"]) == \
        ("hospital (prod)", "every 6h", "strict")
    r = client.patch(url, headers=h(tokens["prov-a"]), json={"schedule": None})
    assert r.json["schedule"] is None and r.json["next_run_at"] is None
    # what cannot change, and bad values, are 400s naming the field
    for body, word in (({"kind": "fhir"}, "kind"), ({"organisation_id": "org-b"},
                       "organisation_id"), ({"schedule": "sometimes"}, "schedule"),
                       ({"url": "ftp://x.example.org/"}, "http"),
                       ({"url": "https://u:secret@x.example.org/"}, "password")):
        r = client.patch(url, headers=h(tokens["prov-a"]), json=body)
        assert r.status_code == 400 and word in r.get_data(as_text=True), (body, r.json)
    # a provider may not allow private networks; the admin may
    r = client.patch(url, headers=h(tokens["prov-a"]), json={"allow_private": True})
    assert r.status_code == 403
    r = client.patch(url, headers=h(tokens["adm"]), json={"allow_private": True})
    assert r.status_code == 200 and r.json["allow_private"] is True


def _due(runtime: Runtime) -> list[Any]:
    from catalogue.store.harvest import HarvestRepository

    with runtime.database.transaction() as conn:
        return HarvestRepository(conn).due_sources()


def test_a_provider_cannot_move_a_private_network_source_to_another_address(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    """The administrator allowed one address on a private network; a provider pointing the
    source elsewhere would turn that allowance into a way to reach any internal address."""
    created = _register(client, tokens["adm"], "http://10.0.0.5/dcat", allow_private=True)
    url = f"/api/v1/harvest/sources/{created['id']}"
    r = client.patch(url, headers=h(tokens["prov-a"]), json={"url": "http://169.254.169.254/"})
    assert r.status_code == 403 and "administrators" in r.json["error"]["message"]
    assert client.patch(url, headers=h(tokens["prov-a"]),
                        json={"name": "lab"}).status_code == 200
    r = client.patch(url, headers=h(tokens["adm"]), json={"url": "http://10.0.0.6/dcat"})
    assert r.status_code == 200 and r.json["url"] == "http://10.0.0.6/dcat"


def test_another_url_forgets_the_old_pages_validators(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    old, new = (DcatSource(generate_records(20, record), page_size=10) for _ in range(2))
    with DcatServer(old) as first, DcatServer(new) as second:
        created = _register(client, tokens["adm"], first.url, allow_private=True)
        url = f"/api/v1/harvest/sources/{created['id']}"
        r = client.post(f"{url}/run?wait=true", headers=h(tokens["prov-a"]))
        assert r.json["counts"]["created"] == 20
        r = client.patch(url, headers=h(tokens["adm"]), json={"url": second.url})
        assert r.status_code == 200
        with runtime.database.transaction() as conn:
            row = conn.execute("SELECT state FROM harvest_sources WHERE id = %s",
                               (created["id"],)).fetchone()
        assert row is not None and row["state"] == {}
        r = client.post(f"{url}/run?wait=true", headers=h(tokens["prov-a"]))
        assert r.json["status"] == "completed"
        # the same datasets, served from the new address: read in full, none rewritten
        assert r.json["counts"]["seen"] == 20 and new.not_modified == 0


def test_deleting_a_source_keeps_its_runs_and_releases_or_withdraws_its_datasets(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    with DcatServer(DcatSource(generate_records(6, record), page_size=10)) as one, \
            DcatServer(DcatSource(generate_records(12, record)[6:], page_size=10)) as two:
        kept, gone = (_register(client, tokens["adm"], server.url, allow_private=True)
                      for server in (one, two))
        runs = {}
        for source in (kept, gone):
            r = client.post(f"/api/v1/harvest/sources/{source['id']}/run?wait=true",
                            headers=h(tokens["prov-a"]))
            assert r.json["counts"]["created"] == 6
            runs[source["id"]] = r.json["run_id"]
        assert client.delete(f"/api/v1/harvest/sources/{kept['id']}",
                             headers=h(tokens["prov-b"])).status_code == 404
        r = client.delete(f"/api/v1/harvest/sources/{kept['id']}", headers=h(tokens["prov-a"]))
        assert r.status_code == 200, r.json
        assert r.json == {"id": kept["id"], "datasets_withdrawn": 0, "datasets_released": 6}
        r = client.delete(f"/api/v1/harvest/sources/{gone['id']}?withdraw_datasets=true",
                          headers=h(tokens["prov-a"]))
        assert r.json == {"id": gone["id"], "datasets_withdrawn": 6, "datasets_released": 0}
        assert client.get(f"/api/v1/harvest/sources/{kept['id']}",
                          headers=h(tokens["prov-a"])).status_code == 404
        # the run history outlives the sources
        for run_id in runs.values():
            r = client.get(f"/api/v1/harvest/runs/{run_id}", headers=h(tokens["prov-a"]))
            assert r.status_code == 200 and r.json["source_id"] is None
        with runtime.database.transaction() as conn:
            rows = conn.execute("SELECT identifier, status, source_id FROM datasets "
                                "ORDER BY identifier").fetchall()
        assert [(r["status"], r["source_id"]) for r in rows] == \
            [("published", None)] * 6 + [("withdrawn", None)] * 6
        # a released dataset is taken over by the next source that describes it
        taker = _register(client, tokens["adm"], one.url, allow_private=True)
        r = client.post(f"/api/v1/harvest/sources/{taker['id']}/run?wait=true",
                        headers=h(tokens["prov-a"]))
        assert r.json["counts"]["failed"] == 0 and r.json["counts"]["unchanged"] == 6


def test_a_running_source_can_be_neither_changed_nor_deleted(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    slow = DcatSource(generate_records(30, record), page_size=10, page_delay=1.0)
    with DcatServer(slow) as server:
        created = _register(client, tokens["adm"], server.url, allow_private=True)
        url = f"/api/v1/harvest/sources/{created['id']}"
        r = client.post(f"{url}/run", headers=h(tokens["prov-a"]))
        assert r.status_code == 202
        run_id = r.json["run_id"]
        busy_change = client.patch(url, headers=h(tokens["prov-a"]), json={"name": "x"})
        busy_delete = client.delete(url, headers=h(tokens["prov-a"]))
        for _ in range(100):
            run = client.get(f"/api/v1/harvest/runs/{run_id}", headers=h(tokens["prov-a"])).json
            if run["status"] != "running":
                break
            time.sleep(0.1)
    assert busy_change.status_code == 409 and busy_delete.status_code == 409
    assert "in progress" in busy_delete.json["error"]["message"]
    assert run["status"] == "completed" and run["counts"]["created"] == 30
    assert client.get(url, headers=h(tokens["prov-a"])).json["name"] == ""


def test_only_administrators_name_the_server_variables_a_source_sends_as_credentials(
    client: Any, runtime: Runtime, tokens: dict[str, str]
) -> None:
    """token_env / password_env name a variable of this server's environment whose value is
    sent to the source's address: a provider naming CATALOGUE_SECRET_KEY with a URL of its own
    would be sent the server's secret. Only administrators set them, or move such a source."""
    r = client.post("/api/v1/harvest/sources", headers=h(tokens["prov-a"]),
                    json={"organisation_id": "org-a", "kind": "dcat",
                          "url": "https://attacker.example.org/dcat",
                          "config": {"token_env": "CATALOGUE_SECRET_KEY"}})
    assert r.status_code == 403 and "token_env" in r.json["error"]["message"]
    plain = _register(client, tokens["prov-a"], "https://catalogue.example.org/dcat")
    r = client.patch(f"/api/v1/harvest/sources/{plain['id']}", headers=h(tokens["prov-a"]),
                     json={"config": {"password_env": "CATALOGUE_DATABASE_URL"}})
    assert r.status_code == 403
    held = _register(client, tokens["adm"], "https://fhir.example.org/dcat",
                     config={"token_env": "HOSPITAL_A_TOKEN"})
    url = f"/api/v1/harvest/sources/{held['id']}"
    r = client.patch(url, headers=h(tokens["prov-a"]),
                     json={"url": "https://attacker.example.org/dcat"})
    assert r.status_code == 403 and "credentials" in r.json["error"]["message"]
    r = client.patch(url, headers=h(tokens["prov-a"]),
                     json={"config": {"token_env": "HOSPITAL_B_TOKEN"}})
    assert r.status_code == 403
    # what is not a credential stays the provider's to change
    r = client.patch(url, headers=h(tokens["prov-a"]),
                     json={"config": {"token_env": "HOSPITAL_A_TOKEN", "incremental": True},
                           "name": "hospital A"})
    assert r.status_code == 200 and r.json["config"]["incremental"] is True
    assert client.get(url, headers=h(tokens["prov-a"])).json["url"] == held["url"]
