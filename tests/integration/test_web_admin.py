"""The admin area over HTTP (no browser): roles, organisations and users created through the
forms, a token's secret shown once (never cached) that then works on the JSON API until it is
revoked, deactivation ending sessions and tokens, budget resets, the cohort audit log, CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.api.app import create_app
from catalogue.errors import ValidationError
from catalogue.model.identity import SYSTEM, Role, User
from tests.e2e.world import World, built_world
from tests.integration.cohorts import LUNG, stage
from tests.integration.test_web_auth import csrf, sign_in

PAGES = ("/admin", "/admin/organisations", "/admin/users", "/admin/tokens", "/admin/budgets",
         "/admin/audit")


@pytest.fixture(scope="module")
def world(pg_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("webadmin"), "webadmin",
                     corpus_size=0) as found:
        rt = found.runtime
        stage(rt)
        assert rt.indexer is not None
        rt.indexer.drain()
        yield found


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    application = create_app(runtime=world.runtime, background_indexer=False)
    application.testing = False
    return application


def client_of(app: Any, token: str, next_url: str = "/admin") -> Any:
    client = app.test_client()
    assert sign_in(client, token, next_url).status_code == 303
    return client


@pytest.fixture
def admin(app: Any, world: World) -> Any:
    return client_of(app, world.tokens["admin"])


def post(client: Any, path: str, **data: str) -> Any:
    return client.post(path, data={"csrf_token": csrf(client, "/admin"), **data})


def me(client: Any, token: str) -> int:
    return int(client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
               .status_code)


def new_user(world: World, username: str, role: Role = Role.RESEARCHER,
             organisation: str | None = None) -> str:
    ids = world.runtime.identities
    ids.create_user(SYSTEM, User("", username, role, organisation))
    return ids.issue_token(SYSTEM, username, "test").secret


def test_roles(app: Any, world: World) -> None:
    anonymous = app.test_client()
    for path in PAGES:
        response = anonymous.get(path)
        assert response.status_code == 302 and f"/signin?next={path}" in response.location
    for role in ("provider_a", "researcher"):
        client = client_of(app, world.tokens[role], "/")
        for path in PAGES:
            refused = client.get(path)
            assert refused.status_code == 403, (role, path)
            assert "Not allowed" in refused.get_data(True)
        assert 'href="/admin"' not in client.get("/").get_data(True)
        assert post(client, "/admin/organisations", id="sneaky", name="S").status_code == 403
    admin = client_of(app, world.tokens["admin"])
    for path in PAGES:
        page = admin.get(path)
        assert page.status_code == 200, path
    assert 'href="/admin" aria-current="page">Admin</a>' in admin.get("/admin").get_data(True)
    assert 'href="/admin" aria-current="true">Admin</a>' in \
        admin.get("/admin/users").get_data(True)


def test_create_organisation_and_user(admin: Any, world: World) -> None:
    created = post(admin, "/admin/organisations", id="hospital-x", name="Hospital X",
                   country="PT", homepage="")
    assert created.status_code == 303
    listing = admin.get(created.location).get_data(True)
    assert "Hospital X" in listing and "<code>hospital-x</code>" in listing
    assert "is created" in listing
    assert world.runtime.identities.get_organisation("hospital-x").country == "PT"
    # invalid and duplicate: messages on the page, the form as typed
    invalid = post(admin, "/admin/organisations", id="Bad Id", name="B", country="portugal")
    page = invalid.get_data(True)
    assert invalid.status_code == 400 and 'role="alert"' in page
    assert "id:" in page and "country:" in page and 'value="Bad Id"' in page
    duplicate = post(admin, "/admin/organisations", id="hospital-x", name="Again")
    assert duplicate.status_code == 409 and "The organisation was not created" in \
        duplicate.get_data(True)

    user = post(admin, "/admin/users", username="pat", role="provider",
                organisation_id="hospital-x", display_name="Pat", email="")
    assert user.status_code == 303
    users = admin.get(user.location).get_data(True)
    row = re.search(r'<th scope="row">pat</th>(.*?)</tr>', users, re.S)
    assert row and "provider" in row.group(1) and "hospital-x" in row.group(1)
    assert "Active" in row.group(1)
    orphan = post(admin, "/admin/users", username="orphan", role="provider",
                  organisation_id="")
    assert orphan.status_code == 400
    assert "A provider must belong to an organisation" in orphan.get_data(True)
    assert "orphan" not in {u.username for u in world.runtime.identities.list_users(SYSTEM)}


def test_token_secret_shown_once_works_then_revoked(admin: Any, app: Any,
                                                    world: World) -> None:
    new_user(world, "tok-user")
    issued = post(admin, "/admin/tokens", username="tok-user", name="laptop", ttl_days="7")
    page = issued.get_data(True)
    assert issued.status_code == 200, page[:500]
    assert "no-store" in issued.headers["Cache-Control"]
    assert "shown only once" in page
    secret = re.search(r'id="token-secret"[^>]*value="([^"]+)"', page)
    assert secret
    token = secret.group(1)
    token_id = token.split(".")[0]
    assert me(app.test_client(), token) == 200
    # never again: neither in the listing nor in the overview
    listing = admin.get("/admin/tokens?username=tok-user").get_data(True)
    assert token_id in listing and token.split(".")[1] not in listing
    assert "laptop" in listing
    assert token.split(".")[1] not in admin.get("/admin/tokens").get_data(True)

    revoked = post(admin, f"/admin/tokens/{token_id}/revoke", username="tok-user")
    assert revoked.status_code == 303 and "username=tok-user" in revoked.location
    after = admin.get(revoked.location).get_data(True)
    assert "is revoked" in after and "Revoked" in after
    assert me(app.test_client(), token) == 401
    # errors become messages: an unknown user, an unknown token
    unknown = post(admin, "/admin/tokens", username="nobody-here")
    assert unknown.status_code == 404 and 'role="alert"' in unknown.get_data(True)
    missing = post(admin, "/admin/tokens/cic_0000/revoke")
    assert missing.status_code == 404 and "token not found" in missing.get_data(True).lower()


def test_deactivating_a_user_ends_their_session_and_tokens(admin: Any, app: Any,
                                                           world: World) -> None:
    token = new_user(world, "leaving", Role.PROVIDER, "org-a")
    session = client_of(app, token, "/provider")
    assert session.get("/provider").status_code == 200
    done = post(admin, "/admin/users/leaving/active", active="no")
    assert done.status_code == 303
    users = admin.get(done.location).get_data(True)
    assert "is deactivated" in users
    assert re.search(r'<th scope="row">leaving</th>.*?Deactivated.*?Reactivate', users, re.S)
    assert session.get("/provider").status_code == 302  # signed out: back to sign-in
    assert me(app.test_client(), token) == 401
    # an admin cannot lock themselves out
    own = post(admin, "/admin/users/admin1/active", active="no")
    assert own.status_code == 400 and "your own account" in own.get_data(True)
    # reactivated: the token works again
    assert post(admin, "/admin/users/leaving/active", active="yes").status_code == 303
    assert me(app.test_client(), token) == 200


def test_budget_reset_and_audit_log(admin: Any, world: World) -> None:
    rt = world.runtime
    token = new_user(world, "res-budget", Role.RESEARCHER, "prov-b")
    ident = rt.identities.authenticate(token)
    for n in range(3):
        rt.cohorts.count(ident, {"criteria": {"all_of": [
            {"condition": [LUNG]}, {"age": {"gte": 5 * n, "lte": 5 * n + 9}}]}})
    with pytest.raises(ValidationError):
        rt.cohorts.count(ident, {"criteria": {"colour": "blue"}})
    assert rt.cohorts.budget(ident)["researcher"]["spent"] == pytest.approx(0.6)

    budgets = admin.get("/admin/budgets").get_data(True)
    row = re.search(r'<th scope="row">res-budget</th>(.*?)</tr>', budgets, re.S)
    assert row and "0.60" in row.group(1) and "1.40" in row.group(1)
    assert '<th scope="row">prov-b</th>' in budgets  # the organisation's budget

    no_reason = post(admin, "/admin/budgets/reset", scope="user", username="res-budget")
    assert no_reason.status_code == 400 and "reason" in no_reason.get_data(True)
    unknown = post(admin, "/admin/budgets/reset", scope="user", username="ghost",
                   reason="test")
    assert unknown.status_code == 404 and "no user" in unknown.get_data(True).lower()
    reset = post(admin, "/admin/budgets/reset", scope="user", username="res-budget",
                 reason="grant renewed")
    assert reset.status_code == 303
    assert "starts afresh" in admin.get(reset.location).get_data(True)
    assert rt.cohorts.budget(ident)["researcher"]["spent"] == 0.0
    assert rt.cohorts.budget(ident)["organisation"]["spent"] == pytest.approx(0.6)
    org_reset = post(admin, "/admin/budgets/reset", scope="organisation",
                     organisation_id="prov-b", reason="new project")
    assert org_reset.status_code == 303
    assert rt.cohorts.budget(ident)["organisation"]["spent"] == 0.0
    with rt.database.transaction() as conn:
        audited = conn.execute("SELECT actor, target_id, details FROM audit_log WHERE action = "
                               "'cohort.budget_reset' ORDER BY id").fetchall()
    assert [(a["actor"], a["target_id"], a["details"]) for a in audited] == [
        ("admin1", "res-budget", {"reason": "grant renewed"}),
        ("admin1", "prov-b", {"reason": "new project"})]

    # the audit log: newest first, filtered, paged, no answers
    log = admin.get("/admin/audit?username=res-budget").get_data(True)
    outcomes = re.findall(r'badge-outcome-(\w+)', log)
    assert outcomes == ["invalid", "answered", "answered", "answered"]
    assert "0.20" in log and "res-budget" in log and "prov-b" in log
    assert '"subjects"' not in log and "suppressed" not in log
    ids = [int(i) for i in re.findall(r'<tr class="outcome-\w+">\s*<th scope="row">(\d+)', log)]
    assert ids == sorted(ids, reverse=True)
    older = admin.get(f"/admin/audit?username=res-budget&before_id={ids[1]}").get_data(True)
    assert re.findall(r'badge-outcome-(\w+)', older) == ["answered", "answered"]
    assert admin.get("/admin/audit?organisation_id=nowhere").get_data(True).count(
        "No questions match") == 1


def test_audit_log_pages(admin: Any, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # its own entries: the test must not depend on another having run first (-n, -k)
    rt = world.runtime
    ident = rt.identities.authenticate(new_user(world, "res-pager", Role.RESEARCHER, "prov-b"))
    for n in range(2):
        rt.cohorts.count(ident, {"criteria": {"all_of": [
            {"condition": [LUNG]}, {"age": {"gte": 30 + 5 * n, "lte": 39 + 5 * n}}]}})
    monkeypatch.setattr("catalogue.web.admin.AUDIT_PAGE", 1)
    first = admin.get("/admin/audit").get_data(True)
    older = re.search(r'<a href="([^"]+)" rel="next">Older entries</a>', first)
    assert older and "before_id=" in older.group(1)
    second = admin.get(older.group(1).replace("&amp;", "&")).get_data(True)
    assert ">Newest</a>" in second
    assert re.findall(r'<th scope="row">(\d+)', first) != re.findall(
        r'<th scope="row">(\d+)', second)


def test_forms_need_the_csrf_token(admin: Any, world: World) -> None:
    for path, data in (("/admin/organisations", {"id": "no-csrf", "name": "No"}),
                       ("/admin/users", {"username": "no-csrf", "role": "researcher"}),
                       ("/admin/tokens", {"username": "res1"}),
                       ("/admin/budgets/reset", {"scope": "user", "username": "res1",
                                                 "reason": "x"}),
                       ("/admin/users/res1/active", {"active": "no"})):
        refused = admin.post(path, data=data)
        assert refused.status_code == 403, path
        assert "did not come from this site" in refused.get_data(True)
        wrong = admin.post(path, data={**data, "csrf_token": "forged"})
        assert wrong.status_code == 403, path
    ids = world.runtime.identities
    assert "no-csrf" not in {o.id for o in ids.list_organisations()}
    assert "no-csrf" not in {u.username for u in ids.list_users(SYSTEM)}
    assert ids.get_user(SYSTEM, "res1").active
