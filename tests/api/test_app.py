"""The app in-process: discovery documents, health, problem+json, metrics, request ids, the
audit log chained by shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from catalog.examples import example_dataset
from connector.api.app import create_app
from connector.audit import AuditLog
from connector.clock import SystemClock
from connector.db.engine import create_engine
from connector.db.tables import audit_pending
from connector.publishing.healthdcat import metadata_of
from connector.settings import load_settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(data_dir=tmp_path, public_url="http://127.0.0.1:9999")
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["store"] == "ok"
    assert ready.json()["preparing"] == []


async def test_dspace_version(client: httpx.AsyncClient) -> None:
    body = (await client.get("/.well-known/dspace-version")).json()
    assert body["protocolVersions"][0]["version"] == "2025-1"
    assert body["protocolVersions"][0]["path"] == "/dsp/2025-1"


async def test_did_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/did.json")
    doc = response.json()
    assert doc["id"] == "did:web:127.0.0.1%3A9999"
    kinds = {vm["publicKeyJwk"]["crv"] for vm in doc["verificationMethod"]}
    assert kinds == {"Ed25519", "X25519"}
    assert all(vm["type"] == "JsonWebKey2020" for vm in doc["verificationMethod"])
    assert any(s["type"] == "DataService" for s in doc["service"])
    assert all("d" not in vm["publicKeyJwk"] for vm in doc["verificationMethod"])


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_request_id_is_echoed_and_metrics_count(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    metrics = (await client.get("/metrics")).text
    assert 'phems_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    # Without one, each response gets its own (once, also on errors).
    ids = []
    for path in ("/healthz", "/nope"):
        response = await client.get(path)
        [header] = response.headers.get_list("x-request-id")
        assert len(header) == 32 and int(header, 16) >= 0
        ids.append(header)
    assert ids[0] != ids[1]


async def test_keys_survive_restart(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, public_url="http://127.0.0.1:9999")
    docs = []
    for _ in range(2):
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            docs.append(app.state.services.did_document)
    assert docs[0] == docs[1]


async def test_audit_entries_are_chained_by_shutdown(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, public_url="http://127.0.0.1:9999", management_api_key="k"
    )
    app = create_app(settings)
    body = {"id": "cohort", "title": "Cohort", "metadata": metadata_of(example_dataset())}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            key = {"X-Api-Key": "k"}
            created = await c.post("/management/datasets", json=body, headers=key)
            assert created.status_code == 201, created.text
            retired = await c.post("/management/datasets/cohort/retire", headers=key)
            assert retired.status_code == 200, retired.text

    engine = create_engine(settings.effective_database_url)
    try:
        async with engine.connect() as conn:
            pending = await conn.execute(sa.select(sa.func.count()).select_from(audit_pending))
            assert pending.scalar_one() == 0
        log = AuditLog(engine, SystemClock())
        assert [e.event async for e in log.entries()] == ["dataset.created", "dataset.retired"]
        assert (await log.verify()).ok
    finally:
        await engine.dispose()
