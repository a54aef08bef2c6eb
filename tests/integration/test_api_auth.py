"""Authorisation on every write path: the role × action matrix, tokens, the error shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime


@dataclass
class World:
    tokens: dict[str, str]
    draft_b: str
    published_a: str
    published_b: str


def _dataset(org: str, identifier: str, status: str = "draft") -> dict[str, Any]:
    return {
        "identifier": identifier,
        "organisation_id": org,
        "status": status,
        "title": {"en": f"Dataset {identifier}"},
        "modalities": ["CT"],
        "countries": ["ES"],
    }


@pytest.fixture
def world(runtime: Runtime, client: Any) -> World:
    ids = runtime.identities
    ids.create_organisation(SYSTEM, Organisation("org-a", "Provider A", "ES"))
    ids.create_organisation(SYSTEM, Organisation("org-b", "Provider B", "DE"))
    users = {
        "admin": User("", "admin1", Role.ADMIN),
        "provider_a": User("", "prov-a", Role.PROVIDER, "org-a"),
        "provider_b": User("", "prov-b", Role.PROVIDER, "org-b"),
        "researcher": User("", "res1", Role.RESEARCHER),
    }
    tokens = {}
    for key, user in users.items():
        ids.create_user(SYSTEM, user)
        tokens[key] = ids.issue_token(SYSTEM, user.username).secret
    tokens["anonymous"] = ""

    def make(org: str, identifier: str, status: str) -> str:
        r = client.post(
            "/api/v1/datasets",
            json=_dataset(org, identifier, status),
            headers=auth(tokens["admin"]),
        )
        assert r.status_code == 201, r.json
        return str(r.json["id"])

    made = World(
        tokens,
        make("org-b", "b-draft", "draft"),
        make("org-a", "a-pub", "published"),
        make("org-b", "b-pub", "published"),
    )
    assert runtime.indexer is not None
    runtime.indexer.drain()
    return made


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "details", "request_id"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]


ROLES = ["anonymous", "researcher", "provider_a", "provider_b", "admin"]


def _expect(role: str, allowed: set[str]) -> tuple[int, str | None]:
    if role in allowed:
        return 0, None
    if role == "anonymous":
        return 401, "unauthenticated"
    return 403, "forbidden"


@pytest.mark.parametrize("role", ROLES)
def test_matrix_create_organisation(client: Any, world: World, role: str) -> None:
    r = client.post(
        "/api/v1/organisations",
        json={"id": f"new-{role.replace('_', '-')}", "name": "New"},
        headers=auth(world.tokens[role]),
    )
    status, code = _expect(role, {"admin"})
    if code:
        assert_error(r, status, code)
    else:
        assert r.status_code == 201


@pytest.mark.parametrize("role", ROLES)
def test_matrix_create_user(client: Any, world: World, role: str) -> None:
    r = client.post(
        "/api/v1/users",
        json={"username": f"u-{role}", "role": "researcher"},
        headers=auth(world.tokens[role]),
    )
    status, code = _expect(role, {"admin"})
    if code:
        assert_error(r, status, code)
    else:
        assert r.status_code == 201 and r.json["role"] == "researcher"


@pytest.mark.parametrize("role", ROLES)
def test_matrix_list_users(client: Any, world: World, role: str) -> None:
    r = client.get("/api/v1/users", headers=auth(world.tokens[role]))
    status, code = _expect(role, {"admin"})
    if code:
        assert_error(r, status, code)
    else:
        assert {u["username"] for u in r.json} >= {"admin1", "prov-a", "prov-b", "res1"}


@pytest.mark.parametrize("role", ROLES)
def test_matrix_create_dataset_in_org_a(client: Any, world: World, role: str) -> None:
    r = client.post(
        "/api/v1/datasets", json=_dataset("org-a", f"new-{role}"), headers=auth(world.tokens[role])
    )
    status, code = _expect(role, {"admin", "provider_a"})
    if code:
        assert_error(r, status, code)
    else:
        assert r.status_code == 201 and r.json["organisation_id"] == "org-a"


@pytest.mark.parametrize("role", ROLES)
def test_matrix_update_published_dataset_of_org_a(client: Any, world: World, role: str) -> None:
    body = _dataset("org-a", "a-pub", "published")
    body["title"] = {"en": f"changed by {role}"}
    r = client.put(
        f"/api/v1/datasets/{world.published_a}", json=body, headers=auth(world.tokens[role])
    )
    status, code = _expect(role, {"admin", "provider_a"})
    if code:
        assert_error(r, status, code)
        check = client.get(f"/api/v1/datasets/{world.published_a}")
        assert check.json["title"] == {"en": "Dataset a-pub"}
    else:
        assert r.status_code == 200 and r.json["title"] == {"en": f"changed by {role}"}


@pytest.mark.parametrize("role", ROLES)
def test_matrix_withdraw_published_dataset_of_org_b(client: Any, world: World, role: str) -> None:
    r = client.delete(f"/api/v1/datasets/{world.published_b}", headers=auth(world.tokens[role]))
    status, code = _expect(role, {"admin", "provider_b"})
    if code:
        assert_error(r, status, code)
        assert client.get(f"/api/v1/datasets/{world.published_b}").json["status"] == "published"
    else:
        assert r.status_code == 200 and r.json["status"] == "withdrawn"


@pytest.mark.parametrize("role", ROLES)
def test_matrix_draft_of_org_b_is_invisible_to_others(client: Any, world: World, role: str) -> None:
    headers = auth(world.tokens[role])
    r = client.get(f"/api/v1/datasets/{world.draft_b}", headers=headers)
    listing = client.get("/api/v1/datasets?size=100", headers=headers).json
    ids = {h["id"] for h in listing["hits"]}
    if role in {"admin", "provider_b"}:
        assert r.status_code == 200
        assert world.draft_b in ids
    else:
        assert_error(r, 404, "not_found")
        assert world.draft_b not in ids
        assert listing["total"] == 2  # the two published datasets only
        # writing to it does not reveal that it exists either
        pub = client.post(f"/api/v1/datasets/{world.draft_b}/publish", headers=headers)
        assert pub.status_code in (401, 404)


def test_provider_cannot_create_in_another_org_even_by_identifier_reuse(
    client: Any, world: World
) -> None:
    body = _dataset("org-b", "b-pub", "withdrawn")
    r = client.post("/api/v1/datasets", json=body, headers=auth(world.tokens["provider_a"]))
    assert_error(r, 403, "forbidden")
    assert client.get(f"/api/v1/datasets/{world.published_b}").json["status"] == "published"


def test_provider_cannot_move_dataset_to_another_org(client: Any, world: World) -> None:
    body = _dataset("org-b", "a-pub", "published")
    r = client.put(
        f"/api/v1/datasets/{world.published_a}", json=body, headers=auth(world.tokens["provider_a"])
    )
    assert r.status_code in (400, 403)


def test_tokens_are_stored_hashed_only(runtime: Runtime, world: World) -> None:
    with runtime.database.transaction() as conn:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
        dump = " ".join(str(v) for row in rows for v in row.values())
        audit = " ".join(str(r) for r in conn.execute("SELECT * FROM audit_log").fetchall())
    for token in world.tokens.values():
        if token:
            secret = token.split(".", 1)[1]
            assert secret not in dump
            assert secret not in audit
            assert token.split(".", 1)[0] in dump  # the public id is kept for listings


def test_token_lifecycle_revoke_and_expiry(client: Any, runtime: Runtime, world: World) -> None:
    admin = auth(world.tokens["admin"])
    created = client.post(
        "/api/v1/tokens", json={"username": "res1", "name": "laptop"}, headers=admin
    )
    assert created.status_code == 201
    secret = created.json["token"]
    assert client.get("/api/v1/me", headers=auth(secret)).json["username"] == "res1"
    listed = client.get("/api/v1/tokens?username=res1", headers=admin).json
    assert all("token" not in t for t in listed)
    assert client.delete(f"/api/v1/tokens/{created.json['id']}", headers=admin).status_code == 200
    r = client.get("/api/v1/me", headers=auth(secret))
    assert_error(r, 401, "unauthenticated")
    assert "revoked" in r.json["error"]["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # expiry
    issued = runtime.identities.issue_token(SYSTEM, "res1", ttl_days=1)
    with runtime.database.transaction() as conn:
        conn.execute(
            "UPDATE api_tokens SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), issued.token.id),
        )
    r = client.get("/api/v1/me", headers=auth(issued.secret))
    assert_error(r, 401, "unauthenticated")
    assert "expired" in r.json["error"]["message"]


def test_a_token_in_use_is_stamped_at_most_once_a_minute(client: Any, runtime: Runtime,
                                                         world: World) -> None:
    """``last_used_at`` is written on first use and then only when a minute old."""
    issued = runtime.identities.issue_token(SYSTEM, "res1")

    def stamp() -> tuple[Any, str]:
        with runtime.database.transaction() as conn:
            row = conn.execute("SELECT last_used_at, xmin::text AS x FROM api_tokens "
                               "WHERE id = %s", (issued.token.id,)).fetchone()
        return row["last_used_at"], row["x"]

    assert stamp()[0] is None
    assert client.get("/api/v1/me", headers=auth(issued.secret)).status_code == 200
    first = stamp()
    assert first[0] is not None
    for _ in range(3):
        assert client.get("/api/v1/me", headers=auth(issued.secret)).status_code == 200
    assert stamp() == first  # same row version: not rewritten
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' "
                     "WHERE id = %s", (issued.token.id,))
    aged = stamp()
    assert client.get("/api/v1/me", headers=auth(issued.secret)).status_code == 200
    assert stamp()[0] > aged[0]


def test_users_cannot_mint_tokens_for_others_or_revoke_theirs(client: Any, world: World) -> None:
    r = client.post(
        "/api/v1/tokens", json={"username": "admin1"}, headers=auth(world.tokens["researcher"])
    )
    assert_error(r, 403, "forbidden")
    own = client.post("/api/v1/tokens", json={}, headers=auth(world.tokens["researcher"]))
    assert own.status_code == 201
    admin_tokens = client.get("/api/v1/tokens", headers=auth(world.tokens["admin"])).json
    admin_token_id = next(t["id"] for t in admin_tokens if t["username"] == "admin1")
    r = client.delete(f"/api/v1/tokens/{admin_token_id}", headers=auth(world.tokens["provider_a"]))
    assert_error(r, 404, "not_found")


def test_deactivated_user_is_locked_out(client: Any, runtime: Runtime, world: World) -> None:
    runtime.identities.set_user_active(SYSTEM, "prov-a", False)
    r = client.post(
        "/api/v1/datasets", json=_dataset("org-a", "x"), headers=auth(world.tokens["provider_a"])
    )
    assert_error(r, 401, "unauthenticated")


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic abc", "Bearer cic_nope", "Bearer cic_0011.wrong", "Bearer x" * 50],
)
def test_bad_credentials_are_401(client: Any, world: World, header: str) -> None:
    r = client.get("/api/v1/datasets", headers={"Authorization": header})
    assert_error(r, 401, "unauthenticated")


def test_error_shape_for_framework_errors(client: Any, world: World) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.patch("/api/v1/datasets"), 405, "method_not_allowed")
    admin = auth(world.tokens["admin"])
    assert_error(
        client.post(
            "/api/v1/organisations",
            data="{not json",
            content_type="application/json",
            headers=admin,
        ),
        400,
        "invalid_request",
    )
    assert_error(
        client.post("/api/v1/organisations", data="x=1", content_type="text/plain", headers=admin),
        415,
        "unsupported_media_type",
    )
    r = client.post("/api/v1/organisations", json={"id": "Bad Id!", "name": ""}, headers=admin)
    assert_error(r, 400, "invalid_request")
    assert set(r.json["error"]["details"]) == {"id", "name"}
    assert_error(client.get("/api/v1/datasets?page=0"), 400, "invalid_request")
    r = client.post("/api/v1/organisations", json={"id": "org-a", "name": "dup"}, headers=admin)
    assert_error(r, 409, "conflict")


def test_oversized_payload_is_413(client: Any, runtime: Runtime, world: World) -> None:
    big = "x" * (runtime.config.max_request_bytes + 10)
    r = client.post(
        "/api/v1/datasets",
        data=big,
        content_type="application/json",
        headers=auth(world.tokens["admin"]),
    )
    assert_error(r, 413, "payload_too_large")


def test_every_write_is_audited(client: Any, runtime: Runtime, world: World) -> None:
    r = client.post(
        f"/api/v1/datasets/{world.draft_b}/publish", headers=auth(world.tokens["provider_b"])
    )
    assert r.status_code == 200
    with runtime.database.transaction() as conn:
        row = conn.execute(
            "SELECT actor, action, target_id FROM audit_log ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row == {"actor": "prov-b", "action": "dataset.published", "target_id": world.draft_b}
