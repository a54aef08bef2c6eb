"""Browser sign-in over HTTP: the session cookie, its flags, re-validation on every request,
CSRF, and the JSON API ignoring the cookie."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.api.app import create_app
from catalogue.model.identity import SYSTEM
from tests.e2e.world import World, built_world
from tests.integration.test_api_auth import auth

BASE = "http://localhost"


@pytest.fixture(scope="module")
def world(pg_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("webauth"), "webauth",
                     corpus_size=0) as found:
        yield found


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    application = create_app(runtime=world.runtime, background_indexer=False)
    application.testing = False
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()  # a fresh cookie jar per test


def csrf(client: Any, path: str = "/signin") -> str:
    html = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


def sign_in(client: Any, token: str, next_url: str = "/") -> Any:
    return client.post("/signin", data={"csrf_token": csrf(client), "token": token,
                                        "next": next_url})


def session_cookie(client: Any) -> Any:
    return client.get_cookie("catalogue_session")


def test_sign_in_keeps_only_the_token_id_in_a_flagged_cookie(app: Any, client: Any,
                                                             world: World) -> None:
    token = world.tokens["researcher"]
    r = sign_in(client, token, "/search?q=lung")
    assert r.status_code == 303 and r.headers["Location"] == "/search?q=lung"
    header = r.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    assert "Expires=" in header  # a 12-hour session, not the token's lifetime
    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(session_cookie(client).value)
    assert set(data) <= {"token_id", "csrf", "_permanent", "_flashes"}
    secret = token.split(".", 1)[1]
    assert data["token_id"] == token.split(".", 1)[0] and secret not in json.dumps(data)
    page = client.get("/").get_data(as_text=True)
    assert "Signed in as <strong>res1</strong>" in page and "Signed in as res1." in page
    r = client.get("/")
    assert "no-store" in r.headers["Cache-Control"] and "private" in r.headers["Cache-Control"]


def test_secure_cookie_when_the_public_url_is_https(world: World) -> None:
    rt = world.runtime
    app = create_app(config=rt.config.replace(base_url="https://catalogue.example.org"),
                     runtime=rt, background_indexer=False)
    client = app.test_client()
    r = client.get("/signin", base_url="https://catalogue.example.org")
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]


def test_anonymous_pages_set_no_cookie_and_forbid_other_origins(client: Any) -> None:
    r = client.get("/search")
    assert "Set-Cookie" not in r.headers
    policy = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert r.headers["X-Frame-Options"] == "DENY"


def test_a_revoked_token_or_a_deactivated_user_ends_the_session_at_once(
        client: Any, world: World) -> None:
    ids = world.runtime.identities
    issued = ids.issue_token(SYSTEM, "prov-a", "browser")
    sign_in(client, issued.secret)
    assert "Signed in as <strong>prov-a</strong>" in client.get("/").get_data(as_text=True)
    ids.revoke_token(SYSTEM, issued.token.id)
    page = client.get("/").get_data(as_text=True)
    assert "Signed in as" not in page and "You have been signed out" in page
    assert "was revoked" in page
    assert "token_id" not in (session_cookie(client).value if session_cookie(client) else "")

    issued = ids.issue_token(SYSTEM, "prov-b", "browser")
    sign_in(client, issued.secret)
    assert "Signed in as <strong>prov-b</strong>" in client.get("/").get_data(as_text=True)
    ids.set_user_active(SYSTEM, "prov-b", False)
    try:
        draft = f"/datasets/{world.ids['draft-b']}"
        assert client.get(draft).status_code == 404
        assert "Signed in as" not in client.get("/").get_data(as_text=True)
    finally:
        ids.set_user_active(SYSTEM, "prov-b", True)


def test_state_changing_requests_need_the_csrf_token(client: Any, world: World) -> None:
    token = world.tokens["provider_a"]
    # no session at all, then a session but no or a wrong token
    assert client.post("/signin", data={"token": token}).status_code == 403
    csrf(client)
    assert client.post("/signin", data={"token": token}).status_code == 403
    r = client.post("/signin", data={"token": token, "csrf_token": "forged"})
    assert r.status_code == 403 and "form has expired" in r.get_data(as_text=True)
    assert "text/html" in r.content_type  # a page, not the API's JSON
    sign_in(client, token)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        assert client.post("/signout", data=data).status_code == 403
    assert "Signed in as" in client.get("/").get_data(as_text=True)
    good = csrf(client, "/signout")
    r = client.post("/signout", data={"csrf_token": good},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "another site" in r.get_data(as_text=True)
    r = client.post("/signout", data={"csrf_token": good}, headers={"Origin": BASE})
    assert r.status_code == 303
    assert "Signed in as" not in client.get("/").get_data(as_text=True)


def test_the_json_api_ignores_the_session_cookie(client: Any, world: World) -> None:
    sign_in(client, world.tokens["admin"])
    assert "Signed in as <strong>admin1</strong>" in client.get("/").get_data(as_text=True)
    assert client.get("/api/v1/me").status_code == 401
    body = {"identifier": "via-cookie", "organisation_id": "org-a", "title": {"en": "x"}}
    r = client.post("/api/v1/datasets", json=body)
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthenticated"
    assert client.get(f"/api/v1/datasets/{world.ids['draft-b']}").status_code == 404
    # Bearer tokens work exactly as before, with or without the cookie
    r = client.get("/api/v1/me", headers=auth(world.tokens["provider_a"]))
    assert r.status_code == 200 and r.json["username"] == "prov-a"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                    "/\\evil.example", "javascript:alert(1)", "search"])
def test_sign_in_never_redirects_elsewhere(client: Any, world: World, target: str) -> None:
    r = sign_in(client, world.tokens["researcher"], target)
    assert r.status_code == 303 and r.headers["Location"] == "/"


def test_a_bad_token_shows_the_form_again(client: Any) -> None:
    for token, status in (("", 400), ("not-a-token", 401),
                          ("cic_0123456789abcdef.wrong", 401)):
        r = client.post("/signin", data={"csrf_token": csrf(client), "token": token})
        html = r.get_data(as_text=True)
        assert r.status_code == status and 'role="alert"' in html
        assert 'aria-invalid="true"' in html and "Signed in as" not in html
