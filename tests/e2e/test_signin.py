"""Signing in with a token in a real browser, drafts per organisation, CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import expect

from tests.e2e.conftest import Visit
from tests.e2e.world import World


def sign_in(tab: Visit, token: str) -> None:
    tab.click_to(tab.page.get_by_role("link", name="Sign in", exact=True), "signin")
    tab.page.get_by_label("API token").fill(token)
    tab.click_to(tab.page.get_by_role("button", name="Sign in"), "signed-in")


def test_providers_see_their_own_drafts_only(visit: Callable[..., Visit],
                                             e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    draft_a, draft_b = e2e_world.ids["draft-a"], e2e_world.ids["draft-b"]
    tab.go(f"/datasets/{draft_b}", "anonymous-draft", status=404)
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")

    # provider A signs in from the 404 page and comes back to it: still not found
    sign_in(tab, e2e_world.tokens["provider_a"])
    assert page.url.endswith(f"/datasets/{draft_b}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    header = page.get_by_role("banner")
    expect(header).to_contain_text("Signed in as prov-a")
    tab.go(f"/datasets/{draft_a}", "own-draft")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Unpublished liver CT of provider A")
    expect(page.get_by_text("Only Provider A and administrators can see this dataset")
           ).to_be_visible()
    tab.go("/search?q=unpublished", "own-draft-in-search")
    results = page.locator("#results")
    expect(results.get_by_role("link", name="Unpublished liver CT of provider A")
           ).to_be_visible()
    expect(results.locator(".badge-draft")).to_have_text("Draft")
    assert results.get_by_text("glioblastoma", exact=False).count() == 0

    # a POST without the session's CSRF token is refused, and changes nothing
    refused = page.request.post(tab.base + "/signout", form={"x": "1"})
    assert refused.status == 403 and "form has expired" in refused.text()
    tab.go("/", "still-signed-in")
    expect(header).to_contain_text("Signed in as prov-a")

    # signing out ends the session: the draft is gone again
    tab.click_to(header.get_by_role("button", name="Sign out"), "signed-out")
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    expect(header.get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    tab.go(f"/datasets/{draft_a}", "draft-after-signout", status=404)

    # provider B, in another browser, sees its own uploaded draft with every field
    other = visit()
    other.go("/", "home")
    sign_in(other, e2e_world.tokens["provider_b"])
    expect(other.page.get_by_role("banner")).to_contain_text("Signed in as prov-b")
    other.go(f"/datasets/{draft_b}", "provider-b-draft")
    expect(other.page.get_by_role("heading", level=1)).to_contain_text("glioblastoma")
    expect(other.page.get_by_text("Charité Imaging Research").first).to_be_visible()


def test_a_wrong_token_is_refused_with_a_message(visit: Callable[..., Visit],
                                                 e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    tab.go("/signin", "signin")
    page.get_by_label("API token").fill("cic_0000000000000000.not-the-secret")
    tab.click_to(page.get_by_role("button", name="Sign in"), "refused")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("This token cannot sign you in")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["catalogue_session"]  # the CSRF token's session, not signed in
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert re.search("Sign in", page.get_by_role("banner").inner_text())
