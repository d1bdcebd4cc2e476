"""Pages for people: the home page at `/`, Swagger UI at `/docs` from the package (no CDN), and
error pages in HTML for a browser while programs keep problem+json."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from catalog.examples import example_dataset, example_policies
from connector.api.apidocs import ASSETS
from connector.api.app import create_app
from connector.publishing.healthdcat import metadata_of
from connector.settings import load_settings

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PUBLIC = "http://127.0.0.1:9999"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(data_dir=tmp_path, public_url=PUBLIC, participant_name="Kinderklinik")
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.headers["X-Api-Key"] = app.state.services.management_api_key
            yield c


async def _publish(client: httpx.AsyncClient) -> str:
    ds = example_dataset(base_url=PUBLIC, dataset_id="asthma", hospital_name="Kinderklinik")
    body = {
        "id": ds.identifier,
        "title": ds.title,
        "description": ds.description,
        "formats": [d.dsp_format for d in ds.distributions],
        "offers": list(example_policies(ds.identifier, base_url=PUBLIC)),
        "metadata": metadata_of(ds),
    }
    response = await client.post("/management/datasets", json=body)
    assert response.status_code == 201, response.text
    return ds.identifier


async def test_home_page_for_a_browser_names_the_hospital_and_its_contact(
    client: httpx.AsyncClient,
) -> None:
    await _publish(client)
    page = await client.get("/", headers={"Accept": BROWSER})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "<h1>Kinderklinik</h1>" in text
    assert 'href="/catalog"' in text and "1 dataset published here" in text
    assert "mailto:research-data@hospital.example" in text
    assert "did:web:127.0.0.1%3A9999" in text and 'href="/docs"' in text


async def test_catalog_links_to_home_lead_to_the_home_page(client: httpx.AsyncClient) -> None:
    """The catalog's foaf:homepage and the dataset's contact URL are the connector's `/`."""
    dataset_id = await _publish(client)
    turtle = (await client.get(f"/catalog/datasets/{dataset_id}")).text
    assert f"<{PUBLIC}/>" in turtle
    assert (await client.get("/", headers={"Accept": BROWSER})).status_code == 200


async def test_home_for_a_program_is_json_links(client: httpx.AsyncClient) -> None:
    body = (await client.get("/")).json()
    assert body["did"] == "did:web:127.0.0.1%3A9999"
    assert body["dsp"] == f"{PUBLIC}/dsp/2025-1"
    assert body["links"]["docs"] == "/docs"


async def test_docs_load_swagger_ui_from_the_connector_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs", headers={"Accept": BROWSER})
    assert page.status_code == 200
    # Every asset the page loads is local: no CDN, no validator badge.
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith("/docs/assets/") for u in urls), urls
    assert '"validatorUrl": null' in page.text
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await client.get("/redoc")).status_code == 404


def test_swagger_ui_is_the_pinned_licensed_copy() -> None:
    readme = (ASSETS / "README.md").read_text()
    assert "`swagger-ui-dist` 5.36.0" in readme
    assert "Apache License" in (ASSETS / "LICENSE").read_text()
    assert "SmartBear" in (ASSETS / "NOTICE").read_text()
    assert (
        (ASSETS / "swagger-ui-bundle.js")
        .read_text()
        .startswith("/*! For license information please see swagger-ui-bundle.js.LICENSE.txt */")
    )
    assert (ASSETS / "swagger-ui-bundle.js.LICENSE.txt").is_file()


async def test_unknown_dataset_is_a_page_for_a_browser_and_problem_json_for_a_program(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/catalog/datasets/nope", headers={"Accept": BROWSER})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "no dataset nope" in page.text and 'href="/catalog"' in page.text
    assert page.headers["x-request-id"] in page.text
    for accept in ("*/*", "application/json", "application/problem+json", None):
        headers = {"Accept": accept} if accept else {}
        answer = await client.get("/management/datasets/nope", headers=headers)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == "no dataset nope"


async def test_every_kind_of_error_is_a_page_for_a_browser(client: httpx.AsyncClient) -> None:
    browser = {"Accept": BROWSER}
    # an unknown route, a bad parameter, a missing key, a wrong method, a refused form
    unknown = await client.get("/no/such/page", headers=browser)
    bad = await client.get("/catalog?page=0", headers=browser)
    unauthenticated = await client.get("/management/datasets", headers={**browser, "X-Api-Key": ""})
    method = await client.delete("/catalog", headers=browser)
    form = await client.post("/catalog/request-access", headers=browser, content=b"x")
    for response, status in (
        (unknown, 404),
        (bad, 400),
        (unauthenticated, 401),
        (method, 405),
        (form, 400),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("text/html"), status
        assert f"HTTP status {status}" in response.text
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert "GET" in method.headers["allow"]


async def test_dsp_routes_keep_dsp_error_bodies_for_a_browser(client: httpx.AsyncClient) -> None:
    response = await client.get("/dsp/2025-1/negotiations/nope", headers={"Accept": BROWSER})
    assert response.status_code == 401
    assert json.loads(response.text)["@type"] == "ContractNegotiationError"
