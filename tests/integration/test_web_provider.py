"""The provider area over HTTP (no browser): roles, uploads with the validation report per
property, publishing and withdrawing, other organisations' drafts, CSRF, harvest sources."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.api.app import create_app
from catalogue.model.dataset import DatasetStatus
from catalogue.model.identity import SYSTEM
from catalogue.store.harvest import HarvestSource
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES, DcatServer, DcatSource, Record, generate_records
from tests.e2e.world import World, built_world

MAX_REQUEST = 256 * 1024


def turtle(i: int, **kwargs: Any) -> bytes:
    _, text = record(i, **kwargs)
    return (PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", "https://provider.example")
            ).encode()


@pytest.fixture(scope="module")
def world(pg_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("web"), "webprovider",
                     corpus_size=40, max_request_bytes=MAX_REQUEST) as found:
        yield found


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    app = create_app(runtime=world.runtime, background_indexer=False)
    app.testing = False
    return app


def csrf(client: Any, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(True))
    assert found, path
    return found.group(1)


def sign_in(app: Any, world: World, role: str) -> Any:
    client = app.test_client()
    token = csrf(client, "/signin")
    response = client.post("/signin", data={"token": world.tokens[role], "csrf_token": token,
                                            "next": "/provider"})
    assert response.status_code == 303
    return client


def upload(client: Any, content: bytes, status: str = "draft", filename: str | None = "d.ttl",
           path: str = "/provider/upload", **extra: str) -> Any:
    data: dict[str, Any] = {"csrf_token": csrf(client, "/provider"), "status": status, **extra}
    if filename:
        data["file"] = (io.BytesIO(content), filename)
    else:
        data["text"] = content.decode()
    return client.post(path, data=data, content_type="multipart/form-data")


def post(client: Any, path: str, **data: str) -> Any:
    return client.post(path, data={"csrf_token": csrf(client, "/provider"), **data})


def test_roles(app: Any, world: World) -> None:
    anonymous = app.test_client()
    response = anonymous.get("/provider")
    assert response.status_code == 302 and "/signin?next=/provider" in response.location
    researcher = sign_in(app, world, "researcher")
    assert researcher.get("/provider").status_code == 403
    assert 'href="/provider"' not in researcher.get("/").get_data(True)

    provider = sign_in(app, world, "provider_a")
    page = provider.get("/provider").get_data(True)
    assert 'href="/provider" aria-current="page">Provider</a>' in page
    assert "Unpublished liver CT of provider A" in page and "Lung adenocarcinoma CT" in page
    assert "glioblastoma" not in page.lower()  # provider B's draft
    drafts = provider.get("/provider?status=draft").get_data(True)
    assert "Unpublished liver CT" in drafts and "Lung adenocarcinoma CT" not in drafts

    admin = sign_in(app, world, "admin")
    chooser = admin.get("/provider").get_data(True)
    assert 'name="organisation_id"' in chooser and "Provider B" in chooser
    chosen = admin.get("/provider?organisation_id=org-b").get_data(True)
    assert "1 violation" in chosen or "violations" in chosen
    assert admin.get("/provider?organisation_id=nope").status_code == 404


def test_upload_invalid_then_valid_publish_withdraw(app: Any, world: World) -> None:
    client = sign_in(app, world, "provider_a")
    # invalid: no dct:description → saved as a draft, the report names the property
    response = upload(client, turtle(2, description=""), filename=None)
    page = response.get_data(True)
    assert response.status_code == 200, page
    assert re.search(r"<code>dct:description</code></th>\s*<td><span class=\"badge "
                     r"badge-violation\">Violation", page)
    assert page.index("badge-violation") < page.find("badge-warning") or \
        "badge-warning" not in page  # violations first
    invalid_id = re.search(r'href="/provider/datasets/([^"]+)"', page.split("upload-result")[1])
    assert invalid_id
    # it cannot be published, neither by upload nor by the button
    refused = upload(client, turtle(2, description=""), status="published")
    assert refused.status_code == 422 and "cannot be published" in refused.get_data(True)
    assert "<code>dct:description</code>" in refused.get_data(True)
    blocked = post(client, f"/provider/datasets/{invalid_id.group(1)}/publish")
    assert blocked.status_code == 422 and "violation" in blocked.get_data(True)

    # valid: saved as a draft from a file, then published, then withdrawn
    response = upload(client, turtle(5), filename="gen5.ttl")
    page = response.get_data(True)
    assert response.status_code == 200 and "Saved a new dataset" in page
    dataset_id = re.search(r'href="/datasets/([^"]+)"', page.split("upload-result")[1])
    assert dataset_id
    ds_id = dataset_id.group(1)
    assert world.runtime.datasets.get(SYSTEM, ds_id).status == DatasetStatus.DRAFT
    published = post(client, f"/provider/datasets/{ds_id}/publish")
    assert published.status_code == 303
    assert world.runtime.datasets.get(SYSTEM, ds_id).status == DatasetStatus.PUBLISHED
    assert "is published" in client.get(published.location).get_data(True)
    listing = client.get("/provider?status=published").get_data(True)
    assert "gen-000005" in listing
    withdrawn = post(client, f"/provider/datasets/{ds_id}/withdraw")
    assert withdrawn.status_code == 303
    assert world.runtime.datasets.get(SYSTEM, ds_id).status == DatasetStatus.WITHDRAWN

    # replace the description of the invalid draft with a valid one, published directly
    fixed = upload(client, turtle(2), status="published",
                   path=f"/provider/datasets/{invalid_id.group(1)}")
    assert fixed.status_code == 200, fixed.get_data(True)
    assert world.runtime.datasets.get(SYSTEM, invalid_id.group(1)).status == \
        DatasetStatus.PUBLISHED


def test_malformed_empty_and_too_large_uploads(app: Any, world: World) -> None:
    client = sign_in(app, world, "provider_a")
    response = upload(client, b"@prefix dct: <http://purl.org/dc/terms/> .\n<a> dct:title ",
                      filename="broken.ttl")
    page = response.get_data(True)
    assert response.status_code == 400
    assert "The description could not be read" in page and "line" in page.lower()
    assert "Turtle" in page
    empty = upload(client, b"", filename=None)
    assert empty.status_code == 200 and "upload was empty" in empty.get_data(True)
    two = upload(client, turtle(7) + turtle(8).replace(b"@prefix", b"@prefix"), filename=None)
    assert two.status_code in (200, 400)  # two datasets in one document: a clear message
    big = upload(client, b"#" * (MAX_REQUEST + 1000), filename="big.ttl")
    assert big.status_code == 413 and "larger than the limit" in big.get_data(True)


def test_other_organisations_drafts_are_not_found(app: Any, world: World) -> None:
    draft_a = world.ids["draft-a"]
    other = sign_in(app, world, "provider_b")
    assert other.get(f"/provider/datasets/{draft_a}").status_code == 404
    assert post(other, f"/provider/datasets/{draft_a}/publish").status_code == 404
    assert post(other, f"/provider/datasets/{draft_a}/withdraw").status_code == 404
    assert upload(other, turtle(9), path=f"/provider/datasets/{draft_a}").status_code == 404
    # a published dataset of another organisation cannot be edited either
    lung = world.ids["lung-adeno"]
    assert other.get(f"/provider/datasets/{lung}").status_code == 404
    assert post(other, f"/provider/datasets/{lung}/withdraw").status_code == 404
    assert world.runtime.datasets.get(SYSTEM, draft_a).status == DatasetStatus.DRAFT
    assert world.runtime.datasets.get(SYSTEM, lung).status == DatasetStatus.PUBLISHED


def test_csrf_is_required(app: Any, world: World) -> None:
    client = sign_in(app, world, "provider_a")
    draft_a = world.ids["draft-a"]
    refused = client.post(f"/provider/datasets/{draft_a}/publish", data={})
    assert refused.status_code == 403 and "form has expired" in refused.get_data(True)
    wrong = client.post("/provider/upload", data={"csrf_token": "x", "text": "x"})
    assert wrong.status_code == 403
    assert world.runtime.datasets.get(SYSTEM, draft_a).status == DatasetStatus.DRAFT


def test_harvest_sources_register_run_and_record_errors(app: Any, world: World) -> None:
    client = sign_in(app, world, "provider_a")
    # registration through the form; a provider cannot allow private networks
    page = client.get("/provider/sources/new")
    assert page.status_code == 200 and "allow_private" not in page.get_data(True)
    assert "<h1>Register a DCAT source" in page.get_data(True)
    created = post(client, "/provider/sources/new", url="https://catalogue.example.org/dcat",
                   name="Example catalogue", schedule="every 6h", validation_mode="strict")
    assert created.status_code == 303
    assert "Example catalogue" in client.get(created.location).get_data(True)
    private = post(client, "/provider/sources/new", url="http://10.0.0.5/", allow_private="yes")
    assert private.status_code == 400 and "administrators" in private.get_data(True)
    bad = post(client, "/provider/sources/new", url="ftp://example.org/x")
    assert bad.status_code == 400 and "http" in bad.get_data(True)

    records = generate_records(4, record)
    records[2] = Record(*record(2, description=""))  # no dct:description
    with DcatServer(DcatSource(records, page_size=10)) as server:
        # a local test server: only an admin may allow it (done through the service)
        source = world.runtime.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="org-a", kind="dcat", url=server.url, name="Local test",
            allow_private=True, validation_mode="strict"))
        listing = client.get("/provider/sources").get_data(True)
        assert "Local test" in listing and "Example catalogue" in listing
        other = sign_in(app, world, "provider_b")
        assert "Local test" not in other.get("/provider/sources").get_data(True)
        assert other.get(f"/provider/sources/{source.id}").status_code == 404
        assert post(other, f"/provider/sources/{source.id}/run").status_code == 404

        started = post(client, f"/provider/sources/{source.id}/run")
        assert started.status_code == 303 and "/provider/runs/" in started.location
        deadline = time.monotonic() + 30
        while True:
            run_page = client.get(started.location).get_data(True)
            if 'id="run-status">running' not in run_page or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert 'id="run-status">completed' in run_page, run_page
    assert "<code>gen-000002</code>" in run_page and "dct:description" in run_page
    history = client.get(f"/provider/sources/{source.id}").get_data(True)
    assert "completed" in history and started.location in history
    run_id = started.location.rsplit("/", 1)[1]
    assert other.get(f"/provider/runs/{run_id}").status_code == 404

    # changing it through the form (what is shown is what is stored)
    edit = client.get(f"/provider/sources/{source.id}/edit")
    assert edit.status_code == 200 and f'value="{server.url}"' in edit.get_data(True)
    assert "<h1>Change source Local test" in edit.get_data(True)
    assert other.get(f"/provider/sources/{source.id}/edit").status_code == 404
    bad = post(client, f"/provider/sources/{source.id}/edit", url=server.url, name="Local test",
               schedule="now and then", validation_mode="strict")
    assert bad.status_code == 400 and "not understood" in bad.get_data(True)
    saved = post(client, f"/provider/sources/{source.id}/edit", url=server.url,
                 name="Local test", schedule="@daily", validation_mode="lenient")
    assert saved.status_code == 303
    scheduled = world.runtime.harvest.get_source(SYSTEM, source.id)
    assert (scheduled.schedule, scheduled.validation_mode) == ("@daily", "lenient")
    assert scheduled.allow_private  # a provider's form leaves the admin's allowance alone
    moved = post(client, f"/provider/sources/{source.id}/edit", url="http://10.1.2.3/",
                 name="Local test", schedule="@daily", validation_mode="lenient")
    assert moved.status_code == 400 and "administrators" in moved.get_data(True)

    # pausing and resuming the schedule, then deleting the source with its datasets
    assert scheduled.enabled and scheduled.next_run_at is not None
    assert post(other, f"/provider/sources/{source.id}/schedule", enabled="no").status_code == 404
    paused = post(client, f"/provider/sources/{source.id}/schedule", enabled="no")
    assert paused.status_code == 303
    page = client.get(paused.location).get_data(True)
    assert 'id="source-state">paused' in page and "Resume schedule" in page
    assert not world.runtime.harvest.get_source(SYSTEM, source.id).enabled
    post(client, f"/provider/sources/{source.id}/schedule", enabled="yes")
    assert world.runtime.harvest.get_source(SYSTEM, source.id).enabled
    assert post(other, f"/provider/sources/{source.id}/delete").status_code == 404
    with world.runtime.database.transaction() as conn:
        harvested = conn.execute("SELECT count(*) AS n FROM datasets WHERE source_id = %s AND "
                                 "status = 'published'", (source.id,)).fetchone()["n"]
    assert harvested == 3  # strict: the record without a description was rejected
    deleted = post(client, f"/provider/sources/{source.id}/delete", withdraw_datasets="yes")
    assert deleted.status_code == 303 and deleted.location.endswith("/provider/sources")
    listing = client.get(deleted.location).get_data(True)
    assert "3 dataset(s) withdrawn" in listing and "Local test" not in listing
    assert client.get(f"/provider/sources/{source.id}").status_code == 404
    assert client.get(f"/provider/runs/{run_id}").status_code == 200  # the run is kept
