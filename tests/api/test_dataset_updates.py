"""Updating a dataset through the management API: what GET returns can be PUT back, changed
where wanted; its read-only parts are checked, not applied; a stale ``modifiedAt`` gets a 409;
a refused update leaves the dataset as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalog.examples import example_dataset
from connector.api.app import create_app
from connector.publishing.healthdcat import STATISTICS_FIELDS, metadata_of
from connector.settings import load_settings

TEN = Path(__file__).resolve().parents[3] / "shared/conformance/fhir/bulk-ndjson-10-patients"
KEY = {"X-Api-Key": "k"}
URL = "/management/datasets/cohort"
OFFER = {
    "@id": "offer-research",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
            ],
        }
    ],
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        data_dir=tmp_path,
        public_url="http://127.0.0.1:9999",
        management_api_key="k",
        fhir_files_dir=TEN,
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=KEY) as c:
            body = {"id": "cohort", "title": "Cohort", "metadata": metadata_of(example_dataset())}
            assert (await c.post("/management/datasets", json=body)).status_code == 201
            refreshed = await c.post(f"{URL}/refresh-statistics")
            assert refreshed.status_code == 200, refreshed.text
            yield c


async def _get(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get(URL)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def _refused(api: httpx.AsyncClient, body: dict[str, Any], status: int) -> str:
    before = await _get(api)
    r = await api.put(URL, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await _get(api) == before
    return str(r.json()["detail"])


async def test_what_get_returns_can_be_put_back(api: httpx.AsyncClient) -> None:
    got = await _get(api)
    assert set(got) >= {"status", "createdAt", "modifiedAt"}
    computed = set(got["metadata"]) & STATISTICS_FIELDS
    assert computed  # the round trip carries computed statistics back

    # The same instant in another offset is the same modifiedAt.
    cet = datetime.fromisoformat(got["modifiedAt"]).astimezone(timezone(timedelta(hours=1)))
    r = await api.put(URL, json=got | {"offers": [OFFER], "modifiedAt": cet.isoformat()})
    assert r.status_code == 200, r.text
    after = await _get(api)
    assert after["offers"] == [OFFER]
    assert after["modifiedAt"] > got["modifiedAt"]
    assert after["metadata"] == got["metadata"] and after["createdAt"] == got["createdAt"]

    # Without the read-only parts, as before: applied to the dataset as it is now.
    plain = {k: v for k, v in after.items() if k not in ("status", "createdAt", "modifiedAt")}
    plain["metadata"] = {k: v for k, v in plain["metadata"].items() if k not in computed}
    r = await api.put(URL, json=plain | {"title": "Cohort, second edition"})
    assert r.status_code == 200, r.text
    assert (await _get(api))["metadata"] == got["metadata"]  # statistics kept


async def test_a_stale_modified_at_is_a_conflict(api: httpx.AsyncClient) -> None:
    first = await _get(api)
    r = await api.put(URL, json=first | {"title": "Edited by one operator"})
    assert r.status_code == 200, r.text
    detail = await _refused(api, first | {"title": "Edited by another"}, 409)
    assert "read it again" in detail
    assert (await _get(api))["title"] == "Edited by one operator"

    # A statistics refresh and a retirement change the dataset too.
    second = await _get(api)
    assert (await api.post(f"{URL}/refresh-statistics")).status_code == 200
    await _refused(api, second | {"title": "After a refresh"}, 409)
    third = await _get(api)
    assert (await api.post(f"{URL}/retire")).status_code == 200
    await _refused(api, third | {"title": "After retirement"}, 409)


async def test_read_only_parts_cannot_be_changed(api: httpx.AsyncClient) -> None:
    got = await _get(api)
    detail = await _refused(api, got | {"status": "retired"}, 400)
    assert "status is published" in detail and "/retire" in detail
    detail = await _refused(api, got | {"createdAt": "2020-01-01T00:00:00+00:00"}, 400)
    assert "createdAt" in detail
    field = sorted(set(got["metadata"]) & STATISTICS_FIELDS)[0]
    changed = got | {"metadata": got["metadata"] | {field: "forged"}}
    detail = await _refused(api, changed, 400)
    assert field in detail and "refresh-statistics" in detail
    # A computed field that the stored dataset does not have (the ten patients' ages are
    # suppressed as small cells) cannot be added either.
    assert "min_typical_age" not in got["metadata"]
    added = got | {"metadata": got["metadata"] | {"min_typical_age": 1}}
    assert "min_typical_age" in await _refused(api, added, 400)
    await _refused(api, got | {"modifiedAt": "not a time"}, 400)
