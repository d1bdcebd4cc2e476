"""The synthetic Fulfilment: request facts, the model for the views' version, streamed output."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from catalog.formats import OutputType
from connector.errors import BadRequestError, ModelNotReadyError, ModelRejectedError
from connector.ports import FulfilmentRequest, SyntheticModelRecord
from connector.synthetic.config import SyntheticConfig
from connector.synthetic.fhir import resource_refs
from connector.synthetic.fulfilment import SyntheticFulfilment
from connector.synthetic.generator import SdvGenerator, fit_job
from tests.synthetic.conftest import Fitted
from tests.synthetic.flatviews import generated_views


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class MemoryStore:
    """The SyntheticModelStore port in memory (the SQL one has its own contract tests)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], SyntheticModelRecord] = {}

    async def save(self, record: SyntheticModelRecord) -> None:
        self.records[(record.dataset_id, record.key)] = record

    async def get(self, dataset_id: str, key: str) -> SyntheticModelRecord | None:
        return self.records.get((dataset_id, key))

    async def for_dataset(self, dataset_id: str) -> list[SyntheticModelRecord]:
        return [r for (d, _), r in self.records.items() if d == dataset_id]

    async def delete(self, dataset_id: str, key: str) -> None:
        self.records.pop((dataset_id, key), None)


def _request(body: dict[str, Any] | None = None, **params: str) -> FulfilmentRequest:
    return FulfilmentRequest(
        agreement_id="agr-1",
        transfer_id="tp-1",
        consumer="did:web:researcher.example",
        dataset_id="ds",
        body=json.dumps(body).encode() if body is not None else b"",
        media_type="application/json",
        params=params,
    )


async def _read(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


@pytest.fixture
async def served(generated: Fitted) -> tuple[SyntheticFulfilment, MemoryStore]:
    store = MemoryStore()
    await store.save(generated.record)
    fulfilment = SyntheticFulfilment(lambda _: generated.generator, store, FixedClock())
    return fulfilment, store


def test_facts_carry_the_number_of_patients() -> None:
    unused = SdvGenerator(SyntheticConfig(), Path("unused"))
    fulfilment = SyntheticFulfilment(lambda _: unused, MemoryStore(), FixedClock())
    assert fulfilment.output_type is OutputType.SYNTHETIC
    assert fulfilment.facts(_request({"patients": 250})).patients == 250
    assert fulfilment.facts(_request(patients="40")).patients == 40
    assert fulfilment.facts(_request()).patients == 100
    assert fulfilment.facts(_request({"part": "report"})).patients == 0
    assert fulfilment.facts(_request({"purpose": "research"})).purpose == "research"
    for bad in (
        {"patients": 0},
        {"patients": "many"},
        {"patients": 20_000, "format": "bundle"},
        {"format": "csv"},
        {"bundleType": "batch"},
        {"part": "everything"},
        {"patiens": 3},
    ):
        with pytest.raises(BadRequestError):
            fulfilment.facts(_request(bad))
    with pytest.raises(BadRequestError, match="not JSON"):
        fulfilment.facts(replace(_request(), body=b"{"))


async def test_bundle_streams_patients_and_ends_with_the_report(
    served: tuple[SyntheticFulfilment, MemoryStore], generated: Fitted
) -> None:
    fulfilment, _ = served
    request = _request({"patients": 30, "seed": 7})
    result = await fulfilment.fulfil(request, fulfilment.facts(request), generated.views)
    assert result.media_type == "application/fhir+json"
    assert result.audit["model"] == generated.record.key and result.audit["patients"] == 30
    bundle = orjson.loads(await _read(result.chunks))
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Patient") == 30 and kinds[-1] == "DocumentReference"
    document = bundle["entry"][-1]["resource"]
    report = json.loads(base64.b64decode(document["content"][0]["attachment"]["data"]))
    assert (
        report["quality"]["score"]
        == generated.generator.report(generated.record)["quality"]["score"]
    )
    page = base64.b64decode(document["content"][1]["attachment"]["data"])
    assert page.startswith(b"<!doctype html>")


async def test_transaction_bundle_posts_each_entry(
    served: tuple[SyntheticFulfilment, MemoryStore], generated: Fitted
) -> None:
    fulfilment, _ = served
    request = _request({"patients": 5, "bundleType": "transaction"})
    result = await fulfilment.fulfil(request, fulfilment.facts(request), generated.views)
    bundle = orjson.loads(await _read(result.chunks))
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert bundle["type"] == "transaction"
    assert {e["request"]["method"] for e in bundle["entry"]} == {"POST"}
    assert all(e["request"]["url"] == e["resource"]["resourceType"] for e in bundle["entry"])


async def test_ndjson_streams_resources_whose_references_resolve(
    served: tuple[SyntheticFulfilment, MemoryStore], generated: Fitted
) -> None:
    fulfilment, _ = served
    request = _request({"patients": 12, "format": "ndjson"})
    result = await fulfilment.fulfil(request, fulfilment.facts(request), generated.views)
    assert result.media_type == "application/fhir+ndjson"
    lines = (await _read(result.chunks)).splitlines()
    resources = [orjson.loads(line) for line in lines]
    ids = {f"urn:uuid:{r['id']}" for r in resources}
    assert sum(r["resourceType"] == "Patient" for r in resources) == 12
    assert all(ref in ids for r in resources for ref in resource_refs(r))


async def test_report_parts(
    served: tuple[SyntheticFulfilment, MemoryStore], generated: Fitted
) -> None:
    fulfilment, _ = served
    request = _request(part="report")
    result = await fulfilment.fulfil(request, fulfilment.facts(request), generated.views)
    assert result.media_type == "application/json"
    assert "privacy" in json.loads(await _read(result.chunks))
    request = _request(part="report.html")
    result = await fulfilment.fulfil(request, fulfilment.facts(request), generated.views)
    assert result.media_type.startswith("text/html")
    assert (await _read(result.chunks)).startswith(b"<!doctype html>")


async def test_changed_data_is_not_served_by_the_old_model_until_refitted(
    served: tuple[SyntheticFulfilment, MemoryStore], generated: Fitted, tmp_path: Path
) -> None:
    """A new data version (new data, or an opt-out) names another model: the cached one is
    not used, the caller is told to retry, the fit job makes the new one, which is served."""
    fulfilment, store = served
    same = await fulfilment.model("ds", generated.views)  # the cached model, reused
    assert same == generated.record
    changed, _ = generated_views(tmp_path, patients=80, seed=2, version="v2")
    request = _request({"patients": 3})
    with pytest.raises(ModelNotReadyError) as refused:
        await fulfilment.fulfil(request, fulfilment.facts(request), changed)
    assert refused.value.status == 503 and refused.value.retry_after == 60
    settings = generated.generator.config.to_mapping()
    models_dir = str(generated.generator.models_dir)
    stages: list[str] = []
    record = fit_job(changed, settings, models_dir, lambda stage, _: stages.append(stage))
    assert record.version == "v2" and record.key != generated.record.key and stages[-1] == "done"
    await store.save(record)
    result = await fulfilment.fulfil(request, fulfilment.facts(request), changed)
    assert result.audit["data_version"] == "v2"
    assert b'"Patient"' in await _read(result.chunks)


async def test_a_model_below_the_minimum_quality_is_not_served(
    generated: Fitted, tmp_path: Path
) -> None:
    strict = SdvGenerator(SyntheticConfig(min_code_patients=3, min_quality=0.999), tmp_path)
    views, _ = generated_views(tmp_path, patients=60, seed=3)
    record = strict.fit(views, lambda *_: None)
    assert not record.accepted and "quality score" in (record.reason or "")
    store = MemoryStore()
    await store.save(record)
    fulfilment = SyntheticFulfilment(lambda _: strict, store, FixedClock())
    with pytest.raises(ModelRejectedError, match="below the minimum"):
        await fulfilment.model("ds", views)
    (Path(record.directory) / "model.pkl").unlink()  # a data directory that was reset
    with pytest.raises(ModelNotReadyError, match="files are missing"):
        await fulfilment.model("ds", views)
