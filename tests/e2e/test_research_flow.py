"""The researcher's web flow after "Access granted", in headless Chromium against a hospital's
connector with FHIR data and a data user's connector (separate processes on loopback): sign
in, request access, start a transfer, run cohort builder queries and see the answer as a table
and a chart (suppressed cells as such), a bad CCDL query, a purpose the policy refuses and a
hospital that is down each said on the page; a synthetic transfer's patients and report
downloaded. Screenshots go to build/test-artifacts/research-flow/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Browser, Page, expect

from connector.api.cohort_builder import CohortForm
from connector.synthetic.client import report_of
from tests.e2e.conftest import Pair, dataset, wait_for
from tests.processes import REPO, stop

ARTIFACTS = REPO / "build" / "test-artifacts" / "research-flow"
MASKED = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _counts(report: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(stratum, count or None when masked) of the cohort and its first stratifier."""
    cohort = report["group"][0]
    out = [("all", _count(cohort["population"][0]))]
    for stratifier in cohort.get("stratifier", [])[:1]:
        for s in stratifier["stratum"]:
            out.append((s["value"]["text"], _count(s["population"][0])))
    return out


def _count(population: dict[str, Any]) -> int | None:
    if "count" in population:
        return int(population["count"])
    assert population["_count"]["extension"][0]["url"] == MASKED
    return None


def _answer_rows(page: Page) -> list[tuple[str, str]]:
    rows = page.get_by_test_id("answer-table").locator("tbody tr")
    return [
        (
            rows.nth(i).locator("td").nth(1).inner_text(),
            rows.nth(i).locator("td").nth(2).inner_text(),
        )
        for i in range(rows.count())
    ]


def _check_answer(
    page: Page, pair: Pair, tid: str, form: CohortForm
) -> list[tuple[str, int | None]]:
    """The table and chart show what the hospital answered: the same query through the
    management API gets the kept answer (same query, same data: same numbers, nothing spent)."""
    expect(page.get_by_test_id("query-display")).to_have_text(form.describe(), timeout=60_000)
    via = pair.capi.http.post(f"/management/transfers/{tid}/data", json=form.ccdl())
    assert via.status_code == 200, via.text
    expected = _counts(via.json())
    shown = _answer_rows(page)
    assert [s for s, _ in shown] == [s for s, _ in expected]
    for (_, text), (_, count) in zip(shown, expected, strict=True):
        assert text == ("suppressed" if count is None else str(count))
    chart = page.get_by_test_id("chart").last
    expect(chart).to_be_visible()
    bars = chart.locator("g.bar")
    # One bar per stratum; a query without strata charts its cohort count.
    drawn = expected[1:] or [("patients", expected[0][1])]
    assert bars.count() == len(drawn)
    for i, (label, count) in enumerate(drawn):
        bar = bars.nth(i)
        assert bar.get_attribute("data-label") == label
        expect(bar).to_contain_text("suppressed" if count is None else str(count))
    return expected


def test_transfer_query_table_chart_and_a_bad_query(
    pair: Pair, browser: Browser, tmp_path: Path
) -> None:
    pair.papi.post("/datasets", dataset(), expect=201)
    dsp = pair.provider.url + "/dsp/2025-1"
    report = pair.capi.post("/harvest", {"targets": [dsp]}, expect=200)
    assert [t["state"] for t in report["targets"]] == ["ok"]
    start = f"/catalog/datasets/paediatric-asthma?provider={quote(pair.provider.did)}"

    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    try:
        page.goto(pair.consumer.url + start)
        page.get_by_role("button", name="Request access").click()
        page.get_by_label("Management API key").fill(pair.consumer.api_key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Request access").click()
        expect(page.get_by_test_id("negotiation-state")).to_have_text("FINALIZED", timeout=30_000)
        expect(page.get_by_role("status")).to_contain_text("Access granted")

        # The next step: the agreement, and a transfer under it.
        page.get_by_role("link", name="Use this agreement").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Agreement")
        expect(page.get_by_text("Paediatric asthma cohort")).to_be_visible()
        _shot(page, "01-agreement")
        page.get_by_role("button", name="Start a transfer: Aggregate statistics").click()
        expect(page.get_by_test_id("transfer-state")).to_have_text("STARTED", timeout=30_000)
        expect(page.get_by_role("status")).to_contain_text("Transfer started")
        _shot(page, "02-transfer-started")
        [transfer] = pair.capi.get("/transfers")
        tid = transfer["id"]
        assert transfer["state"] == "STARTED" and transfer["format"] == "FHIR-Aggregate-PULL"
        assert page.url.endswith(f"/catalog/transfers/{tid}")

        # The cohort builder: girls and boys aged 0 to 17, by sex.
        expect(page.get_by_label("Purpose")).to_have_value("research")  # from the agreement
        page.get_by_label("Sex", exact=True).select_option("female-male")
        page.get_by_label("Age from").fill("0")
        page.get_by_label("to", exact=True).fill("17")
        page.get_by_label("Split the counts by").select_option("sex")
        page.get_by_role("button", name="Run query", exact=True).click()
        children = CohortForm("female-male", 0, 17, stratify="sex", purpose="research")
        by_sex = _check_answer(page, pair, tid, children)
        assert [s for s, _ in by_sex] == ["all", "female", "male"]
        assert None not in [count for _, count in by_sex], by_sex
        _shot(page, "03-answer-by-sex")

        # Everyone, by age band: the bands no patient falls in are suppressed, shown as such.
        page.get_by_label("Sex", exact=True).select_option("any")
        page.get_by_label("Age from").fill("")
        page.get_by_label("to", exact=True).fill("")
        page.get_by_label("Split the counts by").select_option("age")
        page.get_by_role("button", name="Run query", exact=True).click()
        by_age = _check_answer(page, pair, tid, CohortForm(stratify="age", purpose="research"))
        counts = [count for _, count in by_age[1:]]
        assert None in counts and any(c for c in counts), by_age
        expect(page.get_by_test_id("answer-table")).to_contain_text("suppressed")
        expect(page.get_by_test_id("chart")).to_contain_text("suppressed")
        _shot(page, "04-answer-by-age")

        # A diagnosis: patients with asthma (ICD-10 J45 and its subcodes), one count.
        page.get_by_label("Diagnosis code").fill("J45")
        page.get_by_label("Split the counts by").select_option("none")
        page.get_by_role("button", name="Run query", exact=True).click()
        asthma = CohortForm(condition_code="J45", purpose="research")
        assert _check_answer(page, pair, tid, asthma)[0][0] == "all"

        # A pasted CCDL query the hospital's tables cannot answer: its reason, on the page.
        bad = {
            "version": "2",
            "inclusionCriteria": [
                [
                    {
                        "context": {"system": "fdpg.mii.cds", "code": "Specimen", "display": "x"},
                        "termCodes": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "119297000",
                                "display": "Blood specimen",
                            }
                        ],  # fmt: skip
                    }
                ]
            ],
        }
        page.get_by_label("Query (JSON)").fill(json.dumps(bad, indent=2))
        page.get_by_role("button", name="Run CCDL query").click()
        failure = page.get_by_test_id("query-failure")
        expect(failure).to_contain_text("The hospital refused the query")
        expect(failure).to_contain_text("/inclusionCriteria/0/0/context")
        expect(failure).to_contain_text("Specimen")
        expect(page.get_by_label("Query (JSON)")).to_have_value(re.compile("Specimen"))
        assert "Traceback" not in page.content() and '"status"' not in page.inner_text("main")
        _shot(page, "05-bad-ccdl")

        # Not JSON at all: said so, with where, and nothing is sent.
        page.get_by_label("Query (JSON)").fill('{"version": "2",')
        page.get_by_role("button", name="Run CCDL query").click()
        expect(page.get_by_test_id("query-failure")).to_contain_text("The query is not JSON")
        expect(page.get_by_test_id("query-failure")).to_contain_text("line 1")

        # A good CCDL query pasted: the same answer as the builder's.
        page.get_by_label("Query (JSON)").fill(json.dumps(children.ccdl()))
        page.get_by_role("button", name="Run CCDL query").click()
        expect(page.get_by_test_id("query-display")).to_have_text(children.describe())
        assert _answer_rows(page) == [(s, str(c)) for s, c in by_sex]
        _shot(page, "06-pasted-ccdl")

        # A CCDL file chosen for upload (it wins over the text in the box).
        upload = tmp_path / "everyone-by-age.json"
        upload.write_text(json.dumps(CohortForm(stratify="age", purpose="research").ccdl()))
        page.get_by_label("or a file").set_input_files(str(upload))
        page.get_by_role("button", name="Run CCDL query").click()
        expect(page.get_by_test_id("query-display")).to_have_text("Patients")
        assert _answer_rows(page) == [(s, "suppressed" if c is None else str(c)) for s, c in by_age]

        # A purpose the agreement does not permit: the hospital's policy refuses, naming it.
        page.get_by_label("Purpose").fill("marketing")
        page.get_by_role("button", name="Run query", exact=True).click()
        failure = page.get_by_test_id("query-failure")
        expect(failure).to_contain_text("The agreement's conditions do not permit this query")
        expect(failure).to_contain_text("marketing")
        expect(page.get_by_label("Purpose")).to_have_value("marketing")  # the form as sent
        _shot(page, "07-purpose-refused")

        # The hospital's connector is down: said so, on the page.
        stop(pair.provider.proc)
        page.get_by_label("Purpose").fill("research")
        page.get_by_role("button", name="Run query", exact=True).click()
        expect(failure).to_contain_text("The hospital's connector could not be reached")
        _shot(page, "08-hospital-down")
    finally:
        context.close()

    # Someone else's browser sees none of it: it is sent to sign in.
    stranger = browser.new_context()
    try:
        other = stranger.new_page()
        other.goto(pair.consumer.url + f"/catalog/transfers/{tid}")
        expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
        [agreement] = pair.capi.get("/agreements")
        other.goto(pair.consumer.url + f"/catalog/agreements/{agreement['id']}")
        expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        stranger.close()

    events = [e for e in pair.consumer.log().splitlines() if "Traceback" in e]
    assert events == []


@contextmanager
def _signed_in(connector_url: str, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=connector_url, headers={"Accept": "text/html"}) as client:
        r = client.post("/catalog/signin", data={"api_key": api_key, "next": "/catalog"})
        assert r.status_code == 303, r.text
        yield client


ONE_QUERY = {
    "@id": "offer-one-query",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True},
                {"leftOperand": "count", "operator": "lteq", "rightOperand": 1},
            ],
        }
    ],
}


def test_only_the_consumer_side_and_a_real_form_reach_the_pages(pair: Pair) -> None:
    pair.papi.post("/datasets", dataset(offers=[ONE_QUERY]), expect=201)
    catalog = pair.capi.post(
        "/catalog/request", {"counterpartyAddress": pair.provider.url + "/dsp/2025-1"}
    )
    offer = catalog["dataset"][0]["hasPolicy"][0] | {"target": "paediatric-asthma"}
    n = pair.capi.post(
        "/negotiations",
        {"counterpartyAddress": pair.provider.url + "/dsp/2025-1", "offer": offer},
        expect=201,
    )
    wait_for(lambda: pair.capi.get(f"/negotiations/{n['id']}")["state"], lambda s: s == "FINALIZED")
    [agreement] = pair.capi.get("/agreements")
    aid = agreement["id"]

    t = pair.capi.post(
        "/transfers", {"agreementId": aid, "format": "FHIR-Aggregate-PULL"}, expect=201
    )
    wait_for(lambda: pair.capi.get(f"/transfers/{t['id']}")["state"], lambda s: s == "STARTED")
    query = f"/catalog/transfers/{t['id']}/query"
    builder = {"mode": "builder", "sex": "any", "stratify": "sex", "purpose": "research"}

    with _signed_in(pair.consumer.url, pair.consumer.api_key) as user:
        page = user.get(f"/catalog/agreements/{aid}")
        assert page.status_code == 200 and "Start a transfer: Aggregate statistics" in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        # A post without the form's CSRF token (or with another one) does nothing.
        for token in ("", "0" * 64):
            forged = user.post(
                "/catalog/transfers",
                data={"agreement_id": aid, "format": "FHIR-Aggregate-PULL", "csrf": token},
            )
            assert forged.status_code == 403 and "CSRF" in forged.text
            assert forged.headers["content-type"].startswith("text/html")
            asked = user.post(query, data={**builder, "csrf": token})
            assert asked.status_code == 403 and "CSRF" in asked.text
        assert len(pair.capi.get("/transfers")) == 1
        # With it: the answer.
        answered = user.post(query, data={**builder, "csrf": csrf.group(1)})
        assert answered.status_code == 200 and 'data-testid="answer-table"' in answered.text
        # The agreement allows one call: the next is refused, in words, as a page.
        spent = user.post(query, data={**builder, "stratify": "age", "csrf": csrf.group(1)})
        assert spent.status_code == 429 and "Refused: a limit is used up" in spent.text
        assert spent.headers["content-type"].startswith("text/html")
        assert 'data-testid="answer-table"' not in spent.text
        # An upload over the catalogue's form limit: refused unread, as a page.
        big = user.post(
            query,
            files={"ccdl_file": ("q.json", b" " * (70 << 10), "application/json")},
            data={"mode": "ccdl", "csrf": csrf.group(1)},
        )
        assert big.status_code == 413 and big.headers["content-type"].startswith("text/html")
    # A browser that is not signed in is sent to sign in, and nothing is asked.
    with httpx.Client(base_url=pair.consumer.url) as stranger:
        sent = stranger.post(query, data=builder)
        assert sent.status_code == 303 and sent.headers["location"].startswith("/catalog/signin")
    # The hospital's operator, signed in to the hospital's connector, holds the same agreement
    # and transfer as provider: not a researcher's to use.
    [provided] = pair.papi.get("/transfers")
    with _signed_in(pair.provider.url, pair.provider.api_key) as hospital:
        for path in (f"/catalog/agreements/{aid}", f"/catalog/transfers/{provided['id']}"):
            page = hospital.get(path)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html")
            assert "as consumer" in page.text


SYNTHETIC_OFFER = {
    "@id": "offer-synthetic",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True},
                {"leftOperand": "phems:outputType", "operator": "eq", "rightOperand": "synthetic"},
                {"leftOperand": "phems:patients", "operator": "lteq", "rightOperand": 100},
            ],
        }
    ],
}


def _fits_done(pair: Pair) -> bool:
    fits = [j for j in pair.papi.get("/jobs") if j["kind"] == "synthetic-fit"]
    return bool(fits) and all(j["state"] == "done" for j in fits)


def test_synthetic_patients_and_their_report(pair: Pair, browser: Browser) -> None:
    pair.papi.post("/datasets", dataset("paediatric-asthma", [SYNTHETIC_OFFER]), expect=201)
    dsp = pair.provider.url + "/dsp/2025-1"
    pair.capi.post("/harvest", {"targets": [dsp]}, expect=200)
    [ds] = pair.capi.post("/catalog/request", {"counterpartyAddress": dsp})["dataset"]
    n = pair.capi.post(
        "/negotiations",
        {"counterpartyAddress": dsp, "offer": ds["hasPolicy"][0] | {"target": ds["@id"]}},
        expect=201,
    )
    wait_for(lambda: pair.capi.get(f"/negotiations/{n['id']}")["state"], lambda s: s == "FINALIZED")

    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = context.new_page()
    try:
        # Signed in, from the list of agreements to a synthetic transfer.
        page.goto(pair.consumer.url + "/catalog/agreements")
        page.get_by_label("Management API key").fill(pair.consumer.api_key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Paediatric asthma cohort").click()
        page.get_by_role("button", name="Start a transfer: Synthetic data").click()
        expect(page.get_by_test_id("transfer-state")).to_have_text("STARTED", timeout=30_000)

        # The hospital has no model yet: it says so, and fits one meanwhile.
        page.get_by_label("Number of patients").fill("20")
        page.get_by_role("button", name="Download synthetic patients").click()
        failure = page.get_by_test_id("query-failure")
        expect(failure).to_contain_text("The hospital is preparing its data")
        expect(failure).to_contain_text(re.compile(r"Try again in \d+ seconds"))
        expect(page.get_by_label("Number of patients")).to_have_value("20")
        _shot(page, "11-synthetic-preparing")
        wait_for(lambda: _fits_done(pair), bool, timeout=600)

        with page.expect_download(timeout=120_000) as caught:
            page.get_by_role("button", name="Download synthetic patients").click()
        download = caught.value
        assert download.suggested_filename == "synthetic-patients-20.json"
        bundle = json.loads(Path(download.path()).read_text())
        resources = [e["resource"] for e in bundle["entry"]]
        assert bundle["resourceType"] == "Bundle"
        assert sum(r["resourceType"] == "Patient" for r in resources) == 20
        assert resources[-1]["resourceType"] == "DocumentReference"  # the model's report
        report = report_of(resources[-1])
        assert report is not None and {"quality", "privacy", "utility"} <= set(report)

        with page.expect_download(timeout=120_000) as caught:
            page.get_by_role("button", name="Download the report").click()
        assert caught.value.suggested_filename == "synthetic-report.html"
        assert "<html" in Path(caught.value.path()).read_text().lower()

        # More patients than the agreement allows a call: refused, naming the condition.
        page.get_by_label("Number of patients").fill("1000")
        page.get_by_role("button", name="Download synthetic patients").click()
        expect(failure).to_contain_text("The agreement's conditions do not permit this request")
        expect(failure).to_contain_text("patients")
        _shot(page, "12-synthetic-refused")
    finally:
        context.close()
    assert [e for e in pair.consumer.log().splitlines() if "Traceback" in e] == []
