"""/docs in headless Chromium with every request off this connector refused: Swagger UI loads
from the package and renders the API (the machine running it may have no internet)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.conftest import free_port
from tests.processes import running_connector

CHROMIUM = "/usr/bin/chromium"


def test_swagger_ui_renders_with_nothing_but_the_connector(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install -y chromium")
    elsewhere: list[str] = []
    with running_connector(tmp_path / "data", free_port()) as c, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            own = urlsplit(c.url).netloc

            def guard(route: Route) -> None:
                if urlsplit(route.request.url).netloc == own:
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(c.url + "/docs")
            expect(page.get_by_role("heading", name="phems-connector")).to_be_visible()
            expect(page.get_by_text("/management/datasets").first).to_be_visible()
            page.goto(c.url + "/")
            expect(page.get_by_role("link", name="API documentation")).to_be_visible()
        finally:
            browser.close()
    assert elsewhere == []
