"""Browser tests: the real catalogue served over HTTP (waitress, tantivy, PostgreSQL) with a
realistic corpus, driven by Playwright for Python in Debian's headless ``chromium``.

Playwright's own browser downloads are never used: ``executable_path`` points at the system
Chromium (``CATALOGUE_CHROMIUM``, else ``chromium`` on PATH). Every page a test visits is saved
as a PNG in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalogue.testing.app_server import serve
from tests.e2e.world import World, built_world

CHROMIUM_ENV = "CATALOGUE_CHROMIUM"
INSTALL_HINT = "install it with `apt-get install -y chromium` (bash scripts/test.sh does)"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 10_000


def chromium_path() -> str:
    """The system Chromium binary (never a Playwright download)."""
    given = os.environ.get(CHROMIUM_ENV)
    found = given or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not os.access(found, os.X_OK):
        pytest.fail(f"Chromium not found ({CHROMIUM_ENV}={given!r}, PATH): {INSTALL_HINT}",
                    pytrace=False)
    return found


@pytest.fixture(scope="session")
def e2e_world(pg_url: str, template_db: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with built_world(pg_url, template_db, tmp_path_factory.mktemp("e2e"), "e2e") as world:
        yield world


@pytest.fixture(scope="session")
def base_url(e2e_world: World) -> Iterator[str]:
    with serve(e2e_world.runtime) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield launched
        launched.close()


class Visit:
    """One browser tab of a test. Every navigation goes through :meth:`go`, :meth:`click_to`
    or :meth:`press_to`, each of which saves a screenshot of the page it lands on."""

    def __init__(self, context: Any, base: str, name: str) -> None:
        self.context = context
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.base = base
        self.name = name
        self.shots: list[Path] = []

    def snap(self, label: str = "") -> Path:
        self.page.wait_for_load_state("load")
        slug = re.sub(r"[^a-z0-9]+", "-", (label or self.page.url.split("/", 3)[-1]).lower())
        path = SCREENSHOTS / f"{self.name}-{len(self.shots) + 1:02d}-{slug.strip('-')[:50]}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def go(self, path: str, label: str = "", status: int = 200) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == status, (path, response)
        self.snap(label)
        return response

    def click_to(self, locator: Any, label: str = "") -> None:
        """Click (the mouse) and wait for the page it leads to."""
        with self.page.expect_navigation():
            locator.click()
        self.snap(label)

    def press_to(self, key: str, label: str = "") -> None:
        """Press a key on the focused element and wait for the page it leads to."""
        with self.page.expect_navigation():
            self.page.keyboard.press(key)
        self.snap(label)

    def focused(self) -> dict[str, Any]:
        """What has the keyboard focus: tag, text, href, id, the ``aria-labelledby`` of its
        section, and the focus ring's style."""
        return dict(self.page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
                const section = e.closest("section");
                return {tag: e.tagName.toLowerCase(), text: (e.innerText || "").trim(),
                        href: e.getAttribute("href"), id: e.id,
                        section: section && section.getAttribute("aria-labelledby"),
                        outline: s.outlineStyle,
                        outlineColor: s.outlineColor, background: s.backgroundColor}; }"""))

    def tab_to(self, matches: Callable[[dict[str, Any]], bool], limit: int = 400) -> None:
        """Press Tab until the focused element ``matches`` (at most ``limit`` times)."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            if matches(self.focused()):
                return
        raise AssertionError(f"no focusable element matched after {limit} Tab presses")


@pytest.fixture
def visit(browser: Any, base_url: str,
          request: pytest.FixtureRequest) -> Iterator[Callable[..., Visit]]:
    """``visit(java_script=True)`` opens a tab in a fresh browser context (own cookies)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    contexts: list[Any] = []
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")

    def open_tab(java_script: bool = True) -> Visit:
        context = browser.new_context(java_script_enabled=java_script,
                                      viewport={"width": 1280, "height": 900})
        contexts.append(context)
        suffix = "" if len(contexts) == 1 else f"-{len(contexts)}"
        return Visit(context, base_url, name + suffix)

    yield open_tab
    for context in contexts:
        context.close()
