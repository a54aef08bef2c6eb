"""The cohort builder page over plain HTTP: roles, the same answer as the JSON API for the same
question, suppressed cells marked, the CSV export (same numbers, nothing charged, formulas
escaped), CSRF, invalid questions and exhausted budgets as page messages."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from catalogue.api.app import create_app
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.web.cohorts import (
    CohortForm,
    build_question,
    concept_value,
    csv_cell,
    parse_form,
    to_csv,
)
from tests.e2e.world import World, built_world
from tests.integration.cohorts import LUNG, add_dataset, stage
from tests.integration.test_web_auth import csrf, sign_in

EVIL_TITLE = "=Hyperlink Sum"  # a dataset title a spreadsheet would run as a formula


@pytest.fixture(scope="module")
def world(pg_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("webcohorts"), "webcohorts",
                     corpus_size=0) as found:
        rt = found.runtime
        stage(rt)
        found.ids["evil"] = add_dataset(rt, "prov-a", "=hyperlink-sum", "ES")
        rt.identities.create_organisation(SYSTEM, Organisation("uni-w", "University W", "DE"))
        for key, user in {"res_org": User("", "res-w", Role.RESEARCHER, "uni-w"),
                          "res_spent": User("", "res-spent", Role.RESEARCHER)}.items():
            rt.identities.create_user(SYSTEM, user)
            found.tokens[key] = rt.identities.issue_token(SYSTEM, user.username).secret
        assert rt.indexer is not None
        rt.indexer.drain()
        yield found


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    application = create_app(runtime=world.runtime, background_indexer=False)
    application.testing = False
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


FORM = {"condition": LUNG, "match": "all", "modality": "CT", "group_by_1": "dataset"}


def _post(client: Any, data: dict[str, Any], path: str = "/cohorts") -> Any:
    return client.post(path, data={"csrf_token": csrf(client, "/cohorts"), **data})


def _plain(cell: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", cell)).replace(" (suppressed)", "")
    return text.replace(",", "").strip()


def _table(page: str) -> dict[str, tuple[str, str, bool]]:
    """dataset id → (subjects, studies, row marked suppressed) of the per-dataset table."""
    body = page.split('id="cohort-groups"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr( class="suppressed")?>\s*<th scope="row"><a href="/datasets/'
                      r'([^"]+)">[^<]*</a></th>\s*<td class="num">(.*?)</td>\s*'
                      r'<td class="num">(.*?)</td>', body, re.S)
    return {ds: (_plain(s), _plain(t), bool(marked)) for marked, ds, s, t in rows}


def _shown(cell: dict[str, Any]) -> str:
    return "<10" if cell["suppressed"] else str(cell["value"])


def _budget(client: Any, token: str) -> dict[str, Any]:
    reply = client.get("/api/v1/cohorts/budget", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    budget: dict[str, Any] = reply.get_json()
    return budget


# -- the form as a question (pure) ------------------------------------------------------------
def test_the_form_builds_the_apis_question() -> None:
    form = parse_form(MultiDict([
        ("condition", "Primary malignant neoplasm of lung"), ("condition", " "),
        ("condition", "snomed:254837009"), ("match", "any"), ("exclude", "icd10:C74"),
        ("modality", "CT"), ("body_part", "CHEST"), ("sex", "female"), ("age_from", "50"),
        ("age_to", "70"), ("period_from", "2015"), ("period_to", "2020-06"),
        ("countries", "es, IT"), ("providers", "prov-a prov-b"), ("group_by_1", "dataset"),
        ("group_by_2", "sex")]))
    assert form.conditions == ["Primary malignant neoplasm of lung", "snomed:254837009"]
    assert build_question(form) == {"criteria": {"all_of": [
        {"condition": [LUNG, "snomed:254837009"]},
        {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70},
                   "period": {"from": "2015", "to": "2020-06"}}},
        {"sex": ["female"]}, {"provider": ["prov-a", "prov-b"]}, {"country": ["es", "IT"]},
        {"none_of": [{"condition": ["icd10:C74"]}]}]}, "group_by": ["dataset", "sex"]}
    # all of several conditions: each its own criterion; a fresh form groups by dataset
    both = build_question(CohortForm(conditions=[LUNG, "snomed:254837009"]))
    assert both == {"criteria": {"all_of": [{"all_of": [
        {"condition": [LUNG]}, {"condition": ["snomed:254837009"]}]}]}, "group_by": ["dataset"]}
    assert parse_form(MultiDict()).group_by == ["dataset"]
    assert parse_form(MultiDict([("group_by_1", "")])).group_by == []
    # the form's fields post the same form again (the CSV export)
    again = parse_form(MultiDict(form.fields()))
    assert build_question(again) == build_question(form)
    assert concept_value("conditions", "adenocarcinoma of lung (snomed:254626006)") == \
        "snomed:254626006"
    assert concept_value("conditions", "no such thing") == "no such thing"
    assert csv_cell("=SUM(A1)") == "'=SUM(A1)" and csv_cell("-1") == "'-1"
    assert csv_cell("@x") == "'@x" and csv_cell("+1") == "'+1" and csv_cell("<10") == "<10"
    assert to_csv([["a", "=b"]]) == "a,'=b\r\n"


# -- pages ------------------------------------------------------------------------------------
def test_only_researchers_use_the_builder(client: Any, app: Any, world: World) -> None:
    anonymous = client.get("/cohorts")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/signin?next=/cohorts")
    for key in ("provider_a", "admin"):
        other = app.test_client()
        sign_in(other, world.tokens[key])
        refused = other.get("/cohorts")
        assert refused.status_code == 403 and "text/html" in refused.content_type
        assert "researcher" in refused.get_data(as_text=True)
        assert ">Cohorts</a>" not in other.get("/").get_data(as_text=True)
        assert _post(other, FORM).status_code == 403
    sign_in(client, world.tokens["res_org"])
    page = client.get("/cohorts")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<a href="/cohorts" aria-current="page">Cohorts</a>' in text
    assert 'list="condition-options"' in text and 'value="snomed:93880001"' in text
    assert 'name="modality" value="CT"' in text and 'name="body_part" value="CHEST"' in text
    assert '<option value="dataset" selected>' in text
    assert 'id="budget-researcher"' in text and 'id="budget-organisation"' in text
    assert "2.00</strong> of 2.00" in text and "4.00</strong> of 4.00" in text


def test_the_page_shows_the_apis_numbers_and_the_csv_repeats_them_for_free(
        client: Any, world: World) -> None:
    token = world.tokens["res_org"]
    sign_in(client, token)
    before = _budget(client, token)
    reply = _post(client, FORM)
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200, page[:2000]
    spent = _budget(client, token)
    charged = round(spent["researcher"]["spent"] - before["researcher"]["spent"], 6)
    assert charged == 0.2 and "charged <strong>ε 0.20</strong>" in page
    table = _table(page)

    # the JSON API, asked the same question, answers with the same numbers, for free
    question = build_question(parse_form(MultiDict(FORM)))
    api = client.post("/api/v1/cohorts/count", json=question,
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    assert api["parameters"]["repeated"] is True and api["parameters"]["charged"] == 0.0
    assert api["group_by"] == ["dataset"]
    assert table == {g["dataset"]: (_shown(g["subjects"]), _shown(g["studies"]),
                                    g["subjects"]["suppressed"]) for g in api["groups"]}
    assert len(table) == len(api["groups"]) >= 6
    total = api["total"]
    assert _plain(page.split('id="total-subjects">', 1)[1].split("</dd>", 1)[0]) == \
        _shown(total["subjects"])
    # suppressed cells are marked and explained; the chart draws every group
    suppressed = [g for g in api["groups"] if g["subjects"]["suppressed"]]
    assert suppressed, "the staged data has datasets without lung cancer"
    assert page.count('class="suppressed-value"') >= len(suppressed)
    assert 'id="legend"' in page and "suppressed to protect privacy" in page
    chart = page.split('<table class="chart" id="cohort-chart">', 1)[1].split("</table>", 1)[0]
    assert chart.count('<svg class="bar"') == len(api["groups"])
    assert chart.count('<tr class="suppressed">') == len(suppressed)
    assert f'href="/datasets/{world.ids["evil"]}"' in page
    assert "2.00</strong> ε left" not in page and "1.80</strong> of 2.00" in page

    # the CSV: the same form posted again; a repeat, so nothing is charged
    exported = _post(client, FORM, "/cohorts/export.csv")
    assert exported.status_code == 200
    assert exported.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="cohort-dataset-\d{8}-\d{6}\.csv"',
                        exported.headers["Content-Disposition"])
    assert exported.headers["X-Cohort-Charged"] == "0.0"
    assert _budget(client, token) == spent
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0] == ["row", "dataset", "dataset_label", "subjects", "studies"]
    assert rows[1] == ["total", "", "", _shown(total["subjects"]), _shown(total["studies"])]
    by_id = {r[1]: r for r in rows[2:]}
    assert {ds: (r[3], r[4]) for ds, r in by_id.items()} == {
        ds: (s, t) for ds, (s, t, _) in table.items()}
    assert all(r[0] == "group" for r in rows[2:]) and len(rows) == 2 + len(table)
    assert by_id[world.ids["evil"]][2] == "'" + EVIL_TITLE
    assert "<10" in {r[3] for r in rows[2:]}

    # the CSRF token is required for both
    for path in ("/cohorts", "/cohorts/export.csv"):
        refused = client.post(path, data=FORM)
        assert refused.status_code == 403 and "form has expired" in refused.get_data(
            as_text=True)
    assert _budget(client, token) == spent


def test_invalid_questions_and_exhausted_budgets_are_page_messages(client: Any,
                                                                   world: World) -> None:
    rt = world.runtime
    token = world.tokens["res_spent"]
    sign_in(client, token)
    for data, expected in (({"age_from": "fifty"}, "is not a whole number of years"),
                           ({"modality": "XRAY"}, "XRAY"),
                           ({"period_from": "2020-13"}, "give a year or a month"),
                           ({"condition": "no such cancer"}, "not in the conditions vocabulary"),
                           ({"group_by_1": "colour"}, "unknown dimension")):
        reply = _post(client, {**FORM, **data})
        page = reply.get_data(as_text=True)
        assert reply.status_code == 400, (data, page[:500])
        assert "This question cannot be counted" in page and html.escape(expected) in page
        assert 'role="alert"' in page and 'id="result"' not in page
        assert 'name="condition"' in page  # the form is still there, as typed
    assert _budget(client, token)["researcher"]["spent"] == 0.0

    ident = rt.identities.authenticate(token)
    assert _post(client, FORM).status_code == 200  # asked once: a repeat later is free
    for n in range(9):
        rt.cohorts.count(ident, {"criteria": {"age": {"gte": 5 * n, "lte": 5 * n + 4}}})
    exhausted = _post(client, {**FORM, "sex": "female"})
    page = exhausted.get_data(as_text=True)
    assert exhausted.status_code == 429
    assert "Your researcher privacy budget is exhausted" in page
    assert "0.00 of 2.00 left" in page and 'id="result"' not in page
    assert "0.00</strong> of 2.00" in page
    again = _post(client, FORM)
    assert again.status_code == 200
    assert "free</strong> (ε 0 charged)" in again.get_data(as_text=True)
