"""The catalog UI in headless Chromium (Debian's `chromium`, driven by Playwright): search,
filter, open a harvested dataset, sign in, request access, watch the negotiation finish.
Screenshots go to build/test-artifacts/catalog-ui/."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Federation, dataset
from tests.processes import REPO

ARTIFACTS = REPO / "build" / "test-artifacts" / "catalog-ui"


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_search_filter_open_request_access(federation: Federation, browser: Browser) -> None:
    federation.sapi.post("/datasets", dataset("asthma-cohort"), expect=201)
    report = federation.uapi.post("/harvest", expect=200)
    assert [t["state"] for t in report["targets"]] == ["ok", "ok", "failed"]

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        page.goto(federation.user.url + "/catalog")
        expect(page.get_by_role("heading", name=re.compile("2 datasets found"))).to_be_visible()
        _shot(page, "01-catalog")

        # Free-text search, submitted from the keyboard.
        page.get_by_label("Search", exact=True).fill("lung-function")
        page.get_by_label("Search", exact=True).press("Enter")
        expect(page.get_by_role("heading", name=re.compile("1 dataset found"))).to_be_visible()
        expect(page.get_by_role("link", name="Paediatric respiratory care cohort")).to_be_visible()
        _shot(page, "02-search")

        # Filters: clear the text, pick a hospital and an age range.
        page.get_by_label("Search", exact=True).fill("")
        page.get_by_label("Ospedale Pediatrico Sud").check()
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("heading", name=re.compile("1 dataset found"))).to_be_visible()
        expect(page.get_by_role("link", name="Paediatric asthma cohort")).to_be_visible()
        page.get_by_label("Ospedale Pediatrico Sud").uncheck()
        page.get_by_label("Kinderklinik Nord").check()
        page.get_by_role("spinbutton", name="From").fill("5")
        page.get_by_role("spinbutton", name="to").fill("10")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("heading", name=re.compile("1 dataset found"))).to_be_visible()
        _shot(page, "03-filter")

        page.get_by_role("link", name="Paediatric respiratory care cohort").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Paediatric respiratory care cohort"
        )
        expect(page.get_by_role("table")).to_contain_text("age_at_encounter_years")
        expect(page.get_by_text(re.compile("^Research only"))).to_have_count(2)
        expect(page.get_by_text("Kinderklinik Nord").first).to_be_visible()
        _shot(page, "04-dataset")

        # Request access: not signed in yet, so sign in first and come back.
        page.get_by_role("button", name="Request access").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Management API key").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("That key is not right.")
        _shot(page, "05-signin-refused")
        page.get_by_label("Management API key").fill(federation.user.api_key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Paediatric respiratory care cohort"
        )
        page.get_by_role("button", name="Request access").click()
        expect(page.get_by_role("heading", name="Access request")).to_be_visible()
        _shot(page, "06-negotiating")
        expect(page.get_by_test_id("negotiation-state")).to_have_text("FINALIZED", timeout=30_000)
        expect(page.get_by_role("status")).to_contain_text("Access granted")
        _shot(page, "07-granted")
    finally:
        context.close()

    # The negotiation is real: the data user's connector holds a signed agreement.
    [agreement] = federation.uapi.get("/agreements")
    assert agreement["agreement"]["target"] == "paediatric-respiratory-2019-2024"
