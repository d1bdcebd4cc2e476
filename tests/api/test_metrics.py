"""/metrics through the app: the store's gauges read on each scrape, services' own metrics in
the same registry, a failing source reported and left out, no values other than counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from catalog.examples import example_dataset, example_policies
from connector.api.app import create_app
from connector.metrics import Metrics
from connector.publishing.healthdcat import metadata_of
from connector.settings import load_settings

PUBLIC = "http://127.0.0.1:9999"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    application = create_app(load_settings(data_dir=tmp_path, public_url=PUBLIC))
    async with application.router.lifespan_context(application):
        yield application


def _client(app: FastAPI) -> httpx.AsyncClient:
    key = app.state.services.management_api_key
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"X-Api-Key": key}
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_store_gauges_follow_the_store_on_each_scrape(app: FastAPI) -> None:
    async with _client(app) as client:
        before = _samples((await client.get("/metrics")).text)
        assert before[("phems_metrics_source_up", (("source", "store"),))] == 1
        assert before[("phems_negotiations", (("role", "provider"), ("state", "REQUESTED")))] == 0
        # Publishing a dataset writes an audit entry: it shows as pending until chained.
        ds = example_dataset(base_url=PUBLIC, dataset_id="d1", hospital_name="H")
        body = {
            "id": "d1",
            "title": ds.title,
            "description": ds.description,
            "formats": [d.dsp_format for d in ds.distributions],
            "offers": list(example_policies("d1", base_url=PUBLIC)),
            "metadata": metadata_of(ds),
        }
        assert (await client.post("/management/datasets", json=body)).status_code == 201
        await app.state.services.audit.flush()
        after = _samples((await client.get("/metrics")).text)
    assert after[("phems_audit_pending_entries", ())] == 0
    assert after[("phems_outbox_pending_messages", ())] == 0
    # The HTTP counters are in the same exposition.
    route = (("method", "POST"), ("route", "/management/datasets"), ("status", "201"))
    assert after[("phems_http_requests_total", route)] == 1


async def test_a_service_adds_its_own_metrics(app: FastAPI) -> None:
    metrics: Metrics = app.state.services.metrics
    assert metrics is app.state.metrics
    calls = metrics.counter("phems_test_calls_total", "Calls.", ("outcome",))
    calls.labels("refused").inc(3)

    class Queue:
        name = "test-queue"

        async def collect(self) -> Iterable[Any]:
            return [GaugeMetricFamily("phems_test_jobs_waiting", "Jobs waiting.", value=4)]

    metrics.add_source(Queue())
    with pytest.raises(ValueError, match="already registered"):
        metrics.add_source(Queue())
    async with _client(app) as client:
        samples = _samples((await client.get("/metrics")).text)
    assert samples[("phems_test_calls_total", (("outcome", "refused"),))] == 3
    assert samples[("phems_test_jobs_waiting", ())] == 4
    assert samples[("phems_metrics_source_up", (("source", "test-queue"),))] == 1


async def test_a_failing_source_is_reported_and_the_rest_still_served(app: FastAPI) -> None:
    class Broken:
        name = "broken"

        async def collect(self) -> Iterable[Any]:
            raise RuntimeError("the queue's table is gone")

    app.state.metrics.add_source(Broken())
    async with _client(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    samples = _samples(response.text)
    assert samples[("phems_metrics_source_up", (("source", "broken"),))] == 0
    assert samples[("phems_metrics_source_up", (("source", "store"),))] == 1
    assert "the queue's table is gone" not in response.text


async def test_only_counts_and_ages_with_known_labels(app: FastAPI) -> None:
    async with _client(app) as client:
        await client.get("/healthz")
        text = (await client.get("/metrics")).text
    labels = {
        name
        for family in text_string_to_metric_families(text)
        for s in family.samples
        for name in s.labels
    }
    assert labels <= {"role", "state", "source", "method", "route", "status", "le"}
