"""A researcher builds a cohort in a real browser: picks a condition and a modality, groups by
dataset, counts, sees the table and the chart, and follows a dataset's link.

The shared browser-test world has no subject records, so this module serves its own catalogue
with the staged cohort population (``tests.integration.cohorts``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from catalogue.model.identity import SYSTEM, Role, User
from catalogue.testing.app_server import serve
from tests.e2e.conftest import Visit
from tests.e2e.world import World, built_world
from tests.integration.cohorts import stage


@pytest.fixture(scope="module")
def cohort_world(pg_url: str, template_db: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("e2e-cohorts"),
                     "e2ecohorts", corpus_size=0) as world:
        rt = world.runtime
        stage(rt)
        rt.identities.create_user(SYSTEM, User("", "res-cohort", Role.RESEARCHER))
        world.tokens["cohort"] = rt.identities.issue_token(SYSTEM, "res-cohort").secret
        yield world


@pytest.fixture(scope="module")
def base_url(cohort_world: World) -> Iterator[str]:  # this module's own served catalogue
    with serve(cohort_world.runtime) as url:
        yield url


def test_a_researcher_builds_a_cohort_and_sees_the_chart(visit: Callable[..., Visit],
                                                         cohort_world: World) -> None:
    tab = visit()
    page = tab.page
    tab.go("/cohorts", "cohorts-anonymous")  # sent to sign in, and back afterwards
    assert "/signin?next=/cohorts" in page.url
    page.get_by_label("API token").fill(cohort_world.tokens["cohort"])
    tab.click_to(page.get_by_role("button", name="Sign in"), "cohorts-signed-in")
    assert page.url.endswith("/cohorts")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cohort builder")
    expect(page.get_by_role("link", name="Cohorts")).to_have_attribute("aria-current", "page")
    expect(page.locator("#budget-researcher")).to_contain_text("2.00 of 2.00")

    # a condition from the vocabulary's suggestions, a modality, grouped by dataset
    condition = page.get_by_label("Condition 1")
    assert page.locator("#condition-options option[value='snomed:93880001']").count() == 1
    condition.fill("Primary malignant neoplasm of lung")
    page.get_by_role("checkbox", name=re.compile(r"^Computed Tomography")).check()
    page.get_by_label("Group by").select_option("dataset")
    tab.click_to(page.get_by_role("button", name="Count subjects"), "cohorts-result")

    result = page.locator("#result")
    expect(result.get_by_role("heading", name="Result")).to_be_visible()
    expect(page.locator("#charge")).to_contain_text("ε 0.20")
    expect(page.locator("#budget-researcher")).to_contain_text("1.80 of 2.00")
    table = page.get_by_role("table", name="Subjects and studies per dataset")
    expect(table).to_be_visible()
    groups = table.locator("tbody tr").count()
    assert groups >= 5  # every published dataset is a group (staged ones and the showcase)
    expect(table.locator("tbody tr").first).not_to_have_class("suppressed")
    assert table.locator(".suppressed-value").count() >= 1  # datasets without lung cancer
    expect(page.locator("#legend")).to_contain_text("suppressed to protect privacy")
    chart = page.get_by_role("table", name="Subjects per dataset")
    expect(chart).to_be_visible()
    assert chart.locator("svg.bar rect.fill").count() == groups
    assert chart.locator("tr.suppressed svg.bar").count() >= 1
    # the form keeps what was chosen
    expect(condition).to_have_value("Primary malignant neoplasm of lung")
    expect(page.get_by_role("checkbox", name=re.compile(r"^Computed Tomography"))).to_be_checked()

    # the biggest group first (lung CT): its dataset's page
    link = table.locator("tbody tr").first.get_by_role("link")
    name = link.inner_text()
    tab.click_to(link, "cohorts-dataset")
    assert re.search(r"/datasets/[0-9a-f-]{36}$", page.url)
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
