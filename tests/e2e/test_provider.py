"""The provider area in a real browser: an invalid upload shows the validation report naming the
missing property; a valid one is saved as a draft and published; other providers' drafts stay
out of reach."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES
from tests.e2e.conftest import Visit
from tests.e2e.test_signin import sign_in
from tests.e2e.world import World

RECORD = 10  # a colorectal CT/MR cohort: nothing the search tests look for


def turtle(**kwargs: str) -> str:
    _, text = record(RECORD, **kwargs)
    return PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", "https://upload.example")


def _provider(world: World) -> str:
    """A provider of an organisation of its own (the shared corpus stays as it is)."""
    ids = world.runtime.identities
    ids.create_organisation(SYSTEM, Organisation("org-upload", "Upload Hospital", "PT"))
    ids.create_user(SYSTEM, User("", "prov-upload", Role.PROVIDER, "org-upload"))
    return ids.issue_token(SYSTEM, "prov-upload", "e2e provider").secret


def test_provider_uploads_invalid_then_valid_and_publishes(visit: Callable[..., Visit],
                                                           e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    tab.go("/", "home")
    sign_in(tab, _provider(e2e_world))
    tab.click_to(page.get_by_role("navigation", name="Main").get_by_role("link", name="Provider"),
                 "provider-home")
    expect(page.get_by_role("heading", level=1)).to_contain_text("My datasets")
    tab.click_to(page.get_by_role("link", name="Upload a description"), "upload-form")

    # an invalid description (no dct:description): saved as a draft, the report names it
    page.get_by_label("…or paste the description").fill(turtle(description=""))
    tab.click_to(page.get_by_role("button", name="Upload and validate"), "upload-invalid")
    report = page.locator("#validation-report")
    expect(report).to_be_visible()
    row = report.locator("tr.sev-violation",
                         has=page.get_by_role("rowheader", name="dct:description"))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Violation")
    expect(row).to_contain_text("<https://upload.example/dataset/gen-000010>")
    expect(report.locator("tbody tr").first).to_have_class("sev-violation")
    expect(page.get_by_role("status").last).to_contain_text("1 violation")

    # the same dataset again, now valid: it replaces the draft and can be published
    page.get_by_label("…or paste the description").fill(turtle())
    tab.click_to(page.get_by_role("button", name="Upload and validate"), "upload-valid")
    expect(page.get_by_text("0 violation(s)")).to_be_visible()
    tab.click_to(page.get_by_role("link", name="edit, publish or withdraw it"), "edit")
    expect(page.locator("#dataset-status")).to_have_text("Draft")
    tab.click_to(page.get_by_role("button", name="Publish"), "published")
    expect(page.locator("#dataset-status")).to_have_text("Published")
    expect(page.get_by_role("status")).to_contain_text("is published")
    dataset_url = page.url.replace("/provider/datasets/", "/datasets/")

    # another provider cannot reach it through the provider area
    other = visit()
    other.go("/", "other-home")
    sign_in(other, e2e_world.tokens["provider_a"])
    other.go(page.url.removeprefix(tab.base), "other-provider-edit", status=404)
    other.go(f"/provider/datasets/{e2e_world.ids['draft-b']}", "other-draft", status=404)
    expect(other.page.get_by_role("heading", level=1)).to_have_text("Page not found")
    other.go(dataset_url.removeprefix(tab.base), "published-dataset-page")


def test_provider_registers_changes_pauses_and_deletes_a_source(
    visit: Callable[..., Visit], e2e_world: World
) -> None:
    """A source's life in the browser: registered through the form, its schedule changed and
    paused, then deleted; every step lands on a page saying what happened."""
    ids = e2e_world.runtime.identities
    ids.create_organisation(SYSTEM, Organisation("org-sources", "Sources Hospital", "PT"))
    ids.create_user(SYSTEM, User("", "prov-sources", Role.PROVIDER, "org-sources"))
    token = ids.issue_token(SYSTEM, "prov-sources", "e2e sources").secret
    tab = visit()
    page = tab.page
    tab.go("/", "home")
    sign_in(tab, token)
    tab.go("/provider/sources/new", "new-source")
    page.get_by_label("Catalogue URL").fill("https://catalogue.example.pt/dcat")
    page.get_by_label("Name (optional)").fill("Sources Hospital catalogue")
    page.get_by_label("Schedule (optional)").fill("@weekly")
    tab.click_to(page.get_by_role("button", name="Register source"), "registered")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sources Hospital catalogue")
    expect(page.locator("#source-state")).to_have_text("enabled")

    tab.click_to(page.get_by_role("link", name="Change the URL, name, schedule or validation"),
                 "edit-form")
    expect(page.get_by_label("Schedule (optional)")).to_have_value("@weekly")
    page.get_by_label("Schedule (optional)").fill("every 12h")
    page.get_by_label("Strict: reject records with violations").check()
    tab.click_to(page.get_by_role("button", name="Save changes"), "saved")
    expect(page.get_by_role("status").or_(page.locator(".flash")).first).to_contain_text(
        "saved")
    expect(page.locator("dl.facts")).to_contain_text("every 12h")
    expect(page.locator("dl.facts")).to_contain_text("strict")

    tab.click_to(page.get_by_role("button", name="Pause schedule"), "paused")
    expect(page.locator("#source-state")).to_have_text("paused")
    expect(page.locator("dl.facts")).to_contain_text("every 12h (paused)")
    expect(page.get_by_role("button", name="Resume schedule")).to_be_visible()
    tab.go("/provider/sources", "listed-paused")
    expect(page.get_by_role("row", name="Sources Hospital catalogue")).to_contain_text(
        "every 12h (paused)")
    tab.click_to(page.get_by_role("link", name="Sources Hospital catalogue"), "source-again")

    page.get_by_label("Also withdraw the datasets it harvested").check()
    tab.click_to(page.get_by_role("button", name="Delete source"), "deleted")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Harvest sources")
    expect(page.locator(".flash").first).to_contain_text("The source is deleted")
    expect(page.get_by_text("Sources Hospital catalogue")).to_have_count(0)
