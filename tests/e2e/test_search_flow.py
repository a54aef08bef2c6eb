"""A researcher in a real browser: finds a dataset through two facets and opens it, with the
mouse and with the keyboard alone; the pages without JavaScript; no script from a title."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Visit
from tests.e2e.world import SHOWCASE, World

TITLE = "Lung adenocarcinoma CT cohort"


def check_dataset_page(tab: Visit, world: World) -> None:
    """The showcase dataset's page: fields, how to get access, the chart, the RDF links."""
    page = tab.page
    dataset_id = world.ids[SHOWCASE]
    assert page.url.endswith(f"/datasets/{dataset_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    main = page.get_by_role("main")
    for text in ("Provider A", "Adenocarcinoma of lung", "Computed Tomography", "Restricted",
                 "Spanish Health Data Access Body", "imaging-data@lafe.example.es",
                 "DICOM studies"):
        expect(main.get_by_text(text, exact=False).first).to_be_visible()
    chart = page.get_by_role("table", name="Subjects by imaging modality")
    expect(chart).to_be_visible()
    expect(chart.get_by_role("row", name=re.compile("Computed Tomography"))).to_contain_text(
        "296")
    assert chart.locator("svg rect.fill").count() == 2  # CT and PT; MR (4) is not published
    for name, fmt in (("Turtle", "turtle"), ("RDF/XML", "rdfxml"), ("JSON-LD", "jsonld"),
                      ("N-Triples", "nt")):
        link = page.get_by_role("link", name=name, exact=True)
        href = link.get_attribute("href")
        assert href == f"/dcat/datasets/{dataset_id}?format={fmt}"
        response = page.request.get(tab.base + href)
        assert response.status == 200 and "lung-adeno" in response.text(), name


def test_researcher_finds_a_dataset_through_two_facets(visit: Callable[..., Visit],
                                                       e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    tab.go("/", "home")
    expect(page.get_by_role("heading", level=1)).to_have_text("Find cancer imaging datasets")
    # the search box suggests concepts of the vocabularies as one types
    page.get_by_label("Search datasets").fill("adeno")
    expect(page.locator('#q-suggestions option[value="Adenocarcinoma of lung"]')).to_be_attached()
    page.get_by_label("Search datasets").fill("")

    filters = page.get_by_role("complementary", name="Filter results")
    provider = filters.get_by_role("region", name="Provider")
    provider.locator("summary").click()  # Provider A is among the less common ones
    tab.click_to(provider.get_by_role("link", name=re.compile(r"^Provider A \d")), "provider")
    expect(page.get_by_role("link", name=re.compile(r"^Remove filter Provider: Provider A"))
           ).to_be_visible()
    modality = page.get_by_role("complementary").get_by_role("region", name="Imaging modality")
    tab.click_to(modality.get_by_role("link", name=re.compile(r"^Computed Tomography \d")),
                 "modality")
    assert "organisation_id=org-a" in page.url and "modalities=CT" in page.url
    expect(page.get_by_role("heading", level=2, name="1 dataset")).to_be_visible()
    results = page.locator("#results")
    tab.click_to(results.get_by_role("link", name=TITLE), "dataset")
    check_dataset_page(tab, e2e_world)
    # back to the results through the breadcrumb: the same search
    tab.click_to(page.get_by_role("navigation", name="Breadcrumb").get_by_role(
        "link", name="Search results"), "back")
    assert "organisation_id=org-a" in page.url and "modalities=CT" in page.url
    # a phone: one column, nothing wider than the screen
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/search?q=lung", f"/datasets/{e2e_world.ids[SHOWCASE]}"):
        tab.go(path, "phone-" + path.split("/")[1].split("?")[0])
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path


def test_the_same_flow_with_the_keyboard_alone(visit: Callable[..., Visit],
                                               e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    tab.go("/", "home")
    tab.tab_to(lambda f: f["text"] == "Skip to main content")
    page.keyboard.press("Enter")
    assert tab.focused()["id"] == "main"
    # type a search and send it with Enter
    tab.tab_to(lambda f: f["id"] == "q")
    page.keyboard.type("lung")
    tab.press_to("Enter", "search")
    assert page.url.endswith("/search?q=lung")
    # into the filters: open the folded provider values with Space, choose one with Enter
    tab.tab_to(lambda f: f["tag"] == "summary" and f["section"] == "facet-organisation_id")
    page.keyboard.press("Space")
    expect(page.locator("section[aria-labelledby=facet-organisation_id] details")
           ).to_have_attribute("open", "")
    tab.tab_to(lambda f: f["tag"] == "a" and f["text"].startswith("Provider A"))
    focus = tab.focused()
    assert focus["background"] == "rgb(255, 191, 31)"  # the focus is visible
    tab.press_to("Enter", "provider")
    tab.tab_to(lambda f: f["tag"] == "a" and f["text"].startswith("Computed Tomography"))
    tab.press_to("Enter", "modality")
    assert "q=lung" in page.url and "organisation_id=org-a" in page.url
    assert "modalities=CT" in page.url
    tab.tab_to(lambda f: f["tag"] == "a" and f["text"] == TITLE)
    tab.press_to("Enter", "dataset")
    check_dataset_page(tab, e2e_world)
    # and the RDF links can be reached from the keyboard too
    tab.tab_to(lambda f: f["tag"] == "a" and f["text"] == "Turtle")


def test_pages_render_complete_without_javascript(visit: Callable[..., Visit],
                                                  e2e_world: World) -> None:
    tab = visit(java_script=False)
    page = tab.page
    tab.go("/search?q=lung", "search")
    assert page.locator("#results .hit").count() == 20
    assert page.locator(".facet").count() >= 6
    expect(page.get_by_role("navigation", name="Pages of results")).to_be_visible()
    expect(page.locator("mark").first).to_be_visible()
    # pages, facets and the range form all work as plain links and GET forms
    tab.click_to(page.get_by_role("link", name="Next page"), "page-2")
    assert "page=2" in page.url
    tab.click_to(page.locator("#facet-countries ~ ul a").first, "facet")
    assert "countries=" in page.url and "page=" not in page.url
    page.get_by_label("From", exact=True).first.fill("50")
    tab.click_to(page.get_by_role("button", name="Apply ranges"), "ranges")
    assert "age_min=50" in page.url and "q=lung" in page.url and "countries=" in page.url
    assert "age_max" not in page.url  # empty fields are dropped from the address
    tab.go(f"/datasets/{e2e_world.ids[SHOWCASE]}", "dataset")
    expect(page.get_by_role("table", name="Subjects by age at study")).to_be_visible()
    expect(page.get_by_role("heading", name="How to get access")).to_be_visible()
    assert page.locator('script[type="application/ld+json"]').count() == 1


def test_a_title_cannot_run_script(visit: Callable[..., Visit], e2e_world: World) -> None:
    tab = visit()
    page = tab.page
    dialogs: list[Any] = []
    page.on("dialog", lambda d: (dialogs.append(d), d.dismiss()))
    tab.go("/search?q=script", "search")
    hit = page.locator("#results .hit").first
    expect(hit.get_by_role("heading")).to_contain_text("<script>window.__xss = 1</script>")
    assert hit.locator("h3 mark").count() >= 1  # highlights still work
    assert hit.locator("script, img").count() == 0
    tab.click_to(hit.get_by_role("link").first, "dataset")
    expect(page.get_by_role("heading", level=1)).to_contain_text("<img src=x")
    assert page.evaluate("window.__xss") is None and not dialogs
