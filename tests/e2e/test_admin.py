"""The admin area in a real browser: an admin issues a token for a user, sees its secret once
(and never again), then revokes it; the token works on the JSON API only in between."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from playwright.sync_api import expect

from catalogue.model.identity import SYSTEM, Role, User
from tests.e2e.conftest import Visit
from tests.e2e.test_signin import sign_in
from tests.e2e.world import World


def api_status(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/api/v1/me",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_admin_issues_a_token_sees_it_once_and_revokes_it(visit: Callable[..., Visit],
                                                          e2e_world: World) -> None:
    e2e_world.runtime.identities.create_user(SYSTEM, User("", "e2e-token-user",
                                                          Role.RESEARCHER))
    tab = visit()
    page = tab.page
    tab.go("/", "home")
    sign_in(tab, e2e_world.tokens["admin"])
    tab.click_to(page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin"),
                 "admin-home")
    expect(page.get_by_role("heading", level=1)).to_have_text("Administration")
    tab.click_to(page.get_by_role("navigation", name="Admin area").get_by_role(
        "link", name="Tokens"), "tokens")

    page.get_by_label("For user").select_option("e2e-token-user")
    page.get_by_label("Name (optional)").fill("e2e laptop")
    tab.click_to(page.get_by_role("button", name="Issue token"), "token-issued")
    expect(page.get_by_role("alert")).to_contain_text("shown only once")
    secret = page.get_by_label("Token", exact=True).input_value()
    token_id = page.locator("#issued-token-id").inner_text()
    assert secret.startswith(token_id + ".")
    assert api_status(tab.base, secret) == 200

    tab.click_to(page.get_by_role("link", name="Back to the tokens"), "tokens-of-user")
    table = page.locator("#tokens")
    row = table.locator("tr", has=page.get_by_role("rowheader", name=token_id))
    expect(row).to_contain_text("e2e laptop")
    assert secret.split(".", 1)[1] not in page.content()  # never shown again
    tab.click_to(row.get_by_role("button", name="Revoke"), "token-revoked")
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(table.locator("tr", has=page.get_by_role("rowheader", name=token_id))
           ).to_contain_text("Revoked")
    assert api_status(tab.base, secret) == 401

