"""The search and dataset pages over plain HTTP (no browser, no JavaScript): complete pages,
URLs that match the API's, escaping, drafts, aggregates, JSON-LD, page weight."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest

from catalogue.api.app import create_app
from tests.e2e.world import SHOWCASE, World, built_world
from tests.integration.test_api_auth import auth

PAGE_WEIGHT_BUDGET = 300 * 1024  # bytes: HTML + the CSS and JS it references (issue 8)


@pytest.fixture(scope="module")
def world(pg_url: str, template_db: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("web"), "webpages") as found:
        yield found


@pytest.fixture(scope="module")
def client(world: World) -> Any:
    app = create_app(runtime=world.runtime, background_indexer=False)
    app.testing = False
    return app.test_client()


class Page(HTMLParser):
    """What the tests look at in a page: links, forms' fields, headings, landmarks, scripts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.stylesheets: list[str] = []
        self.scripts: list[str] = []
        self.inline_scripts: list[tuple[str, str]] = []  # (type, body)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.headings: list[tuple[str, str]] = []
        self._text: list[str] | None = None
        self._heading: list[str] | None = None
        self._script: tuple[str, list[str]] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "a" and "href" in a:
            self._text = []
            self.links.append((a["href"], ""))
        if tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheets.append(a["href"])
        if tag == "script":
            if "src" in a:
                self.scripts.append(a["src"])
            else:
                self._script = (a.get("type", ""), [])
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = [tag]

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._text is not None and self.links:
            href, _ = self.links[-1]
            self.links[-1] = (href, " ".join("".join(self._text).split()))
            self._text = None
        if tag == "script" and self._script is not None:
            self.inline_scripts.append((self._script[0], "".join(self._script[1])))
            self._script = None
        if re.fullmatch(r"h[1-6]", tag) and self._heading:
            self.headings.append((self._heading[0], " ".join("".join(self._heading[1:]).split())))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._script is not None:
            self._script[1].append(data)

    def link(self, text: str) -> str:
        return next(href for href, t in self.links if t.startswith(text))

    def has(self, tag: str, **attrs: str) -> bool:
        return any(t == tag and all(a.get(k) == v for k, v in attrs.items())
                   for t, a in self.tags)


def get(client: Any, url: str, token: str = "", status: int = 200) -> tuple[str, Page]:
    r = client.get(url, headers=auth(token))
    assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:500])
    text = r.get_data(as_text=True)
    return text, Page(text)


# -- search ----------------------------------------------------------------------------------
def test_home_is_the_search_page_and_complete_without_javascript(client: Any) -> None:
    html, page = get(client, "/")
    assert page.headings[0] == ("h1", "Find cancer imaging datasets")
    for landmark in ("header", "nav", "main", "aside", "footer"):
        assert page.has(landmark), landmark
    assert page.has("a", href="#main", **{"class": "skip-link"})
    assert page.has("form", method="get", action="/search", role="search")
    assert page.has("label", **{"for": "q"}) and page.has("input", id="q", name="q")
    assert re.search(r"<h2 id=\"results-heading\">[\d,]+ datasets</h2>", html)
    assert len([h for h in page.headings if h[0] == "h3" and h[1]]) > 20  # facets and hits
    assert page.has("nav", **{"aria-label": "Pages of results"})
    # the results are in the HTML: no script needed to see them
    assert html.count('class="hit"') == 20


def test_facets_are_links_that_correspond_to_the_api(client: Any, world: World) -> None:
    _, page = get(client, "/search")
    href = page.link("Provider A")
    assert urlsplit(href).path == "/search"
    assert parse_qsl(urlsplit(href).query) == [("organisation_id", "org-a")]
    html, page = get(client, href)
    href = page.link("Computed Tomography")
    assert parse_qsl(urlsplit(href).query) == [("organisation_id", "org-a"), ("modalities", "CT")]
    html, page = get(client, href)
    assert '<h2 id="results-heading">1 dataset</h2>' in html
    assert page.link("Lung adenocarcinoma CT cohort") == f"/datasets/{world.ids[SHOWCASE]}"
    # the same query string on the API gives the same hits
    api = client.get("/api/v1/datasets?" + urlsplit(href).query).json
    assert [h["identifier"] for h in api["hits"]] == [SHOWCASE]
    assert page.link("This search as JSON") == "/api/v1/datasets?" + urlsplit(href).query
    # selected values are marked, and their link removes them
    assert "is-selected" in html
    assert parse_qsl(urlsplit(page.link("Remove filter Imaging modality")).query) == [
        ("organisation_id", "org-a")]
    assert page.link("Clear all filters") == "/search"


def test_or_within_a_facet_and_across_facets(client: Any) -> None:
    one = client.get("/api/v1/datasets?modalities=MG").json["total"]
    two = client.get("/api/v1/datasets?modalities=MG&modalities=US").json["total"]
    html, _ = get(client, "/search?modalities=MG&modalities=US")
    assert f'<h2 id="results-heading">{two:,} datasets</h2>' in html and two > one
    narrowed = client.get("/api/v1/datasets?modalities=MG&modalities=US&countries=DE").json
    html, _ = get(client, "/search?modalities=MG&modalities=US&countries=DE")
    assert f'<h2 id="results-heading">{narrowed["total"]:,} dataset' in html


def test_hierarchical_conditions_nest_children(client: Any) -> None:
    html, _ = get(client, "/search")
    facet = html.split('id="facet-conditions"', 1)[1].split("</section>", 1)[0]
    assert facet.count('<ul class="buckets">') > 1  # nested lists
    assert "Adenocarcinoma of lung" in facet


def test_empty_form_fields_redirect_to_the_clean_url(client: Any) -> None:
    r = client.get("/search?q=lung&age_min=&age_max=70&acquired_from=")
    assert r.status_code == 302 and r.headers["Location"] == "/search?q=lung&age_max=70"


def test_ranges_and_pages_and_sort(client: Any) -> None:
    html, page = get(client, "/search?age_min=50&age_max=70&sort=-number_of_individuals")
    assert 'value="50"' in html and "Ages from 50" in html
    nxt = page.link("Next")
    assert parse_qsl(urlsplit(nxt).query)[-1] == ("page", "2")
    html2, page2 = get(client, nxt)
    assert page2.has("a", **{"aria-current": "page", "href": nxt})
    assert '<option value="-number_of_individuals" selected>' in html2


def test_bad_parameters_give_a_page_with_the_message(client: Any) -> None:
    html, _ = get(client, "/search?colour=red", status=400)
    assert "This search cannot be run" in html and "unknown search parameter" in html
    assert "<h1>Find cancer imaging datasets</h1>" in html


def test_highlights_mark_matches_and_escape_everything_else(client: Any,
                                                           world: World) -> None:
    html, page = get(client, "/search?q=radiomics")
    assert "<mark>radiomics</mark>" in html or "<mark>Radiomics</mark>" in html
    html, page = get(client, "/search?q=lung+CT&sort=-modified&size=100")
    hit = html.split(f'/datasets/{world.ids["xss"]}"', 1)[1].split("</article>", 1)[0]
    assert "<script>" not in hit and "<img" not in hit and "onerror=\"" not in hit
    assert "&lt;script&gt;" in hit and "<mark>Lung</mark>" in hit
    assert not any("__xss" in body for _, body in page.inline_scripts)


# -- dataset page -----------------------------------------------------------------------------
def test_dataset_page_shows_every_field_readably(client: Any, world: World) -> None:
    html, page = get(client, f"/datasets/{world.ids[SHOWCASE]}")
    assert page.headings[0] == ("h1", "Lung adenocarcinoma CT cohort")
    for text in ("Provider A", "Spain", "Lung adenocarcinoma", "Computed Tomography", "Lung",
                 "Restricted", "Hospital Universitari La Fe", "imaging-data@lafe.example.es",
                 "Spanish Health Data Access Body", "Regulation (EU) 2025/327",
                 "PACS export of the thoracic oncology unit", "Remote processing",
                 "DICOM studies", "48.0 GB", "Adults with lung adenocarcinoma", "2015-01-01",
                 "English", "EUCAIM SPEC1000011", "snomed:254626006", "Version", "2.1",
                 "Cohorte TC de adenocarcinoma de pulmón"):
        assert text in html, text
    assert page.link("imaging-data@lafe.example.es") == "mailto:imaging-data@lafe.example.es"
    assert page.link("Adenocarcinoma of lung").startswith("/search?conditions=snomed")
    assert 'lang="es"' in html
    headings = [t for level, t in page.headings if level == "h2"]
    for heading in ("Description", "How to get access", "What the records contain",
                    "Distributions", "Cancer and imaging", "Conditions of use",
                    "Machine-readable description"):
        assert heading in headings, heading


def test_dataset_page_charts_protected_aggregates(client: Any, world: World) -> None:
    html, _ = get(client, f"/datasets/{world.ids[SHOWCASE]}")
    records = html.split('id="records"', 1)[1].split("</section>", 1)[0]
    assert "Subjects by imaging modality" in records and "Subjects by age at study" in records
    assert "<svg" in records and "<script" not in records
    assert "296" in records and "55–59" in records
    assert "Magnetic Resonance" not in records  # 4 subjects: never named
    assert "Philips" not in records
    # the record-derived values replace the declared ones, and say so
    assert "Individuals (from the records)" in html
    html, _ = get(client, f"/datasets/{world.ids['pet-local']}")
    records = html.split('id="records"', 1)[1].split("</section>", 1)[0]
    assert "&lt;10" in records and ">7<" not in records and ">9<" not in records


def test_dataset_page_links_the_rdf_in_every_format(client: Any, world: World) -> None:
    _, page = get(client, f"/datasets/{world.ids[SHOWCASE]}")
    for name, fmt, media in (("Turtle", "turtle", "text/turtle"),
                             ("RDF/XML", "rdfxml", "application/rdf+xml"),
                             ("JSON-LD", "jsonld", "application/ld+json"),
                             ("N-Triples", "nt", "application/n-triples")):
        href = page.link(name)
        assert href == f"/dcat/datasets/{world.ids[SHOWCASE]}?format={fmt}"
        r = client.get(href)
        assert r.status_code == 200 and r.mimetype == media, name


def test_dataset_page_embeds_schema_org_json_ld(client: Any, world: World) -> None:
    _, page = get(client, f"/datasets/{world.ids[SHOWCASE]}")
    blocks = [body for kind, body in page.inline_scripts if kind == "application/ld+json"]
    assert len(blocks) == 1 and not any(kind == "" for kind, _ in page.inline_scripts)
    doc = json.loads(blocks[0])
    assert doc["@type"] == "Dataset" and doc["name"] == "Lung adenocarcinoma CT cohort"
    assert doc["url"].endswith(f"/datasets/{world.ids[SHOWCASE]}")
    assert doc["spatialCoverage"] == [{"@type": "Place", "name": "Spain"}]
    assert doc["temporalCoverage"] == "2015-01-01/2022-12-31"
    assert doc["about"][0]["code"]["codeValue"] == "254626006"
    assert doc["isAccessibleForFree"] is False
    assert doc["license"] == "https://creativecommons.org/licenses/by-nc/4.0/"


def test_json_ld_cannot_close_its_script_element(client: Any, world: World) -> None:
    html, page = get(client, f"/datasets/{world.ids['xss']}")
    block = html.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and json.loads(block)["name"].startswith("<script>")
    assert [kind for kind, _ in page.inline_scripts] == ["application/ld+json"]
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html


def test_drafts_are_visible_to_their_organisation_and_admins_only(client: Any,
                                                                 world: World) -> None:
    url = f"/datasets/{world.ids['draft-b']}"
    html, _ = get(client, url, status=404)
    assert "Page not found" in html  # an HTML page, not the API's JSON
    get(client, url, world.tokens["provider_a"], status=404)
    get(client, url, world.tokens["researcher"], status=404)
    html, page = get(client, url, world.tokens["provider_b"])
    assert "Only Provider B and administrators can see this dataset" in html
    assert page.has("meta", name="robots", content="noindex")
    assert "Glioblastoma" in html or "glioblastoma" in html
    assert "Charité Imaging Research" in html  # the publisher read from the JSON-LD upload
    assert not any(text == "Turtle" for _, text in page.links)  # no RDF before publication
    get(client, url, world.tokens["admin"])
    get(client, "/datasets/not-a-uuid", status=404)


# -- weight -----------------------------------------------------------------------------------
def test_search_page_weight_is_within_budget(client: Any, world: World) -> None:
    """HTML + the CSS and JS it references, uncompressed, for the heaviest common views."""
    for url in ("/search", "/search?q=cancer", "/search?modalities=CT&modalities=MR&size=100",
                f"/datasets/{world.ids[SHOWCASE]}"):
        r = client.get(url)
        assert r.status_code == 200
        page = Page(r.get_data(as_text=True))
        weight = len(r.data)
        for asset in (*page.stylesheets, *page.scripts):
            assert urljoin("http://x/", asset).startswith("http://x/"), asset  # nothing remote
            res = client.get(asset)
            assert res.status_code == 200, asset
            assert "max-age=31536000" in res.headers["Cache-Control"]
            weight += len(res.data)
        assert weight <= PAGE_WEIGHT_BUDGET, (url, weight)
    # no image, font or frame is loaded from anywhere
    static = Path(__file__).resolve().parents[2] / "catalogue" / "web" / "static"
    for path in static.iterdir():
        assert "http://" not in path.read_text() and "https://" not in path.read_text(), path
