"""Once fulfilments are installed, a format nothing can fulfil is neither offered (catalog
distributions, the HTML filter, the sample dataset) nor accepted (dataset publishing, transfer
start); the sample dataset offers synthetic patients, with a patients limit, when the
synthetic extra is installed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from catalog.examples import PHEMS_NS, example_dataset
from catalog.formats import Format, OutputType
from connector.api.app import create_app
from connector.composition import Services, build_services
from connector.dsp.agreement import AgreementRecord
from connector.dsp.messages import TransferRequestMessage
from connector.dsp.states import Role
from connector.errors import BadRequestError, InvalidMessageError
from connector.fulfilment.fake import FakeFulfilment
from connector.identity.tokens import VerifiedCaller
from connector.publishing.datasets import DatasetDraft
from connector.publishing.healthdcat import metadata_of, to_dataset
from connector.publishing.records import DatasetRecord
from connector.publishing.sample import SYNTHETIC_PATIENTS, ensure_sample_data
from connector.settings import Settings
from tests.fulfilment.conftest import sample_files

__all__ = ["sample_files"]

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CONSUMER = "did:web:127.0.0.1%3A9"
EVERY_FORMAT = tuple(f.value for f in Format)


def _aggregate_only() -> FakeFulfilment:
    return FakeFulfilment(OutputType.AGGREGATE, lambda *_: b"{}")


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """A connector that can deliver aggregate answers and nothing else."""
    settings = Settings(data_dir=tmp_path / "data", insecure_did_hosts=["127.0.0.1:9"])
    s = await build_services(settings, fulfilments=[_aggregate_only()])
    try:
        yield s
    finally:
        await s.aclose()


async def _stored(s: Services, formats: tuple[str, ...]) -> DatasetRecord:
    """A dataset stored with ``formats`` (as before a fulfilment was uninstalled)."""
    record = DatasetRecord(
        id="ds",
        title="D",
        formats=formats,
        metadata=metadata_of(example_dataset()),
        created_at=T0,
        modified_at=T0,
    )
    async with s.db.transaction() as conn:
        await s.dataset_store.insert(conn, record)
    return record


async def test_publishing_refuses_a_format_nothing_fulfils(services: Services) -> None:
    draft = DatasetDraft(
        id="cohort",
        title="Cohort",
        description="",
        formats=(Format.AGGREGATE.value, Format.ANONYMIZED.value),
        offers=(),
        metadata=metadata_of(example_dataset()),
    )
    with pytest.raises(BadRequestError, match="FHIR-Anonymized-PULL: nothing on this connector"):
        await services.datasets.create(draft, actor="tester")
    assert await services.datasets.list() == []
    aggregate = dataclasses.replace(draft, formats=(Format.AGGREGATE.value,))
    assert (await services.datasets.create(aggregate, actor="tester")).formats == (
        Format.AGGREGATE.value,
    )


async def test_only_fulfilled_formats_are_published(services: Services) -> None:
    record = await _stored(services, EVERY_FORMAT)
    ds = to_dataset(record, services.datasets.publisher)
    assert [d.output_type for d in ds.distributions] == [OutputType.AGGREGATE]
    graph, problems = await services.datasets.catalog_graph()
    assert problems == []
    turtle = graph.serialize(format="turtle")
    assert "/distributions/aggregate>" in turtle
    assert "/distributions/anonymized>" not in turtle and "/distributions/synthetic>" not in turtle


async def test_a_transfer_in_a_format_nothing_fulfils_is_refused(services: Services) -> None:
    s = services
    await _stored(s, (Format.AGGREGATE.value, Format.ANONYMIZED.value))
    terms = {
        "@id": "urn:uuid:agreement",
        "@type": "Agreement",
        "target": "ds",
        "assigner": s.did,
        "assignee": CONSUMER,
        "timestamp": "2026-11-01T11:00:00Z",
        "permission": [{"action": "use"}],
    }
    async with s.db.transaction() as conn:
        await s.stores.agreements.insert(
            conn,
            AgreementRecord(
                id="urn:uuid:agreement",
                negotiation_id="urn:uuid:n",
                role=Role.PROVIDER,
                dataset_id="ds",
                provider_did=s.did,
                consumer_did=CONSUMER,
                agreement=terms,
                provider_signature="p",
                consumer_signature="c",
                uses=0,
                epsilon_spent=0.0,
                created_at=T0,
            ),
        )
    message = TransferRequestMessage.model_validate(
        {
            "consumerPid": "urn:uuid:c1",
            "agreementId": "urn:uuid:agreement",
            "format": Format.ANONYMIZED.value,
            "callbackAddress": "http://127.0.0.1:9/dsp",
        }
    )
    caller = VerifiedCaller(did=CONSUMER, credentials=(), jti="j", exp=T0)
    with pytest.raises(InvalidMessageError, match="cannot be delivered by this connector"):
        await s.transfers.receive_request(caller, message)
    async with s.db.reading() as conn:
        assert await s.stores.transfers.list(conn) == []


async def test_the_html_filter_lists_only_what_can_be_delivered(tmp_path: Path) -> None:
    for fulfilments, shown, hidden in (
        ([_aggregate_only()], ["Aggregate statistics"], ["Synthetic data", "Anonymised extract"]),
        (None, ["Aggregate statistics", "Synthetic data"], ["Anonymised extract"]),
    ):
        settings = Settings(data_dir=tmp_path / str(len(shown)), public_url="http://127.0.0.1:9")
        app = create_app(settings, fulfilments=fulfilments)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                page = await client.get("/catalog", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert all(f"> {label}</label>" in page.text for label in shown), page.text
        assert not any(f"> {label}</label>" in page.text for label in hidden)


async def test_the_sample_dataset_offers_what_can_be_delivered(
    tmp_path: Path, sample_files: Path
) -> None:
    only = await build_services(
        Settings(data_dir=tmp_path / "a", fhir_files_dir=sample_files),
        fulfilments=[_aggregate_only()],
    )
    try:
        record = await ensure_sample_data(only.datasets, sample_files)
    finally:
        await only.aclose()
    assert record.formats == (Format.AGGREGATE.value,)
    assert [o["@id"].rsplit("-", 1)[1] for o in record.offers] == ["aggregate"]

    full = await build_services(Settings(data_dir=tmp_path / "b", fhir_files_dir=sample_files))
    try:
        record = await ensure_sample_data(full.datasets, sample_files)
    finally:
        await full.aclose()
    assert record.formats == (Format.AGGREGATE.value, Format.SYNTHETIC.value)
    synthetic = next(o for o in record.offers if o["@id"].endswith("-synthetic"))
    [permission] = synthetic["permission"]
    [constraint] = permission["constraint"]
    assert {
        "leftOperand": PHEMS_NS + "patients",
        "operator": "lteq",
        "rightOperand": SYNTHETIC_PATIENTS,
    } in constraint["and"]
