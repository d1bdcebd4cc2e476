"""Negotiating first where needed (``connector.federation.negotiate``): which harvested offer
is asked for, refusals, ambiguity, nothing to negotiate, and one negotiation for concurrent
queries. The negotiation service is a fake that plays the provider's answers; the end to end
case (a real hospital connector) is in tests/e2e/test_federated_queries.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from catalog.examples import example_dataset
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role
from connector.errors import UpstreamError
from connector.federation.coordinator import FederatedQueries
from connector.federation.negotiate import HarvestNegotiator
from connector.federation.ports import (
    Hospital,
    HospitalReply,
    HospitalUnreachable,
    NoAgreement,
    QueryRefused,
)
from connector.publishing.harvest import HarvestedDataset
from tests.federation.fakes import SexCodec

DID = "did:web:hospital.example"
ADDRESS = "https://hospital.example/dsp/2025-1"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
QUERY: dict[str, Any] = {"cohort": {}, "strata": ["female", "male"]}


def harvested(dataset_id: str = "resp", did: str = DID) -> HarvestedDataset:
    return HarvestedDataset(did, ADDRESS, example_dataset(dataset_id=dataset_id))


class Index:
    def __init__(self, *datasets: HarvestedDataset) -> None:
        self.datasets = list(datasets)

    async def index(self) -> list[HarvestedDataset]:
        return self.datasets


class Provider:
    """Plays the negotiation service: each request goes REQUESTED, then (on the next look)
    FINALIZED with an agreement, or TERMINATED when its offer id is in ``refuse``."""

    def __init__(self, refuse: tuple[str, ...] = (), fail: bool = False) -> None:
        self.refuse = refuse
        self.fail = fail
        self.requests: list[dict[str, Any]] = []
        self.final: dict[str, Negotiation] = {}

    async def request(
        self, *, counterparty_address: str, counterparty_did: str, offer: dict[str, Any]
    ) -> Negotiation:
        if self.fail:
            raise UpstreamError("connection refused", url=counterparty_address)
        self.requests.append(offer)
        n = Negotiation.new(
            id=f"urn:uuid:n{len(self.requests)}",
            role=Role.CONSUMER,
            counterparty_did=counterparty_did,
            counterparty_address=counterparty_address,
            now=NOW,
        )
        requested = replace(n, state=NegotiationState.REQUESTED, offer=offer)
        if offer["@id"] in self.refuse:
            final = replace(
                requested,
                state=NegotiationState.TERMINATED,
                termination_reason=("the purpose is not allowed",),
            )
        else:
            agreement = {**offer, "@id": f"urn:uuid:agreement-{len(self.requests)}"}
            final = replace(requested, state=NegotiationState.FINALIZED, agreement=agreement)
        self.final[n.id] = final
        return requested

    async def get_local(self, id: str) -> Negotiation:
        await asyncio.sleep(0)
        return self.final[id]


def negotiator(index: Index, provider: Provider) -> HarvestNegotiator:
    return HarvestNegotiator(index, provider, poll_seconds=0)


async def test_the_aggregate_offer_is_negotiated_and_its_agreement_used() -> None:
    provider = Provider()
    hospital = await negotiator(Index(harvested()), provider).agreement(DID)
    [asked] = provider.requests
    assert asked["@id"].endswith("resp-aggregate") and asked["target"] == "resp"
    assert hospital == Hospital(
        DID, "urn:uuid:agreement-1", "resp", ADDRESS, "Paediatric respiratory care cohort"
    )


async def test_a_refusal_is_the_hospitals_status_with_its_reason() -> None:
    provider = Provider(refuse=("http://127.0.0.1:8080/catalog/offers/resp-aggregate",))
    with pytest.raises(QueryRefused, match="refused a contract.*the purpose is not allowed"):
        await negotiator(Index(harvested()), provider).agreement(DID)


async def test_nothing_harvested_or_two_candidates_negotiate_nothing() -> None:
    provider = Provider()
    with pytest.raises(NoAgreement, match="harvest its catalog first"):
        await negotiator(Index(harvested(did="did:web:other")), provider).agreement(DID)
    with pytest.raises(NoAgreement, match="2 datasets for aggregate queries .*name its agreement"):
        await negotiator(Index(harvested("a"), harvested("b")), provider).agreement(DID)
    assert provider.requests == []


async def test_an_unreachable_hospital_is_named() -> None:
    with pytest.raises(HospitalUnreachable, match="cannot ask did:web:hospital.example"):
        await negotiator(Index(harvested()), Provider(fail=True)).agreement(DID)


async def test_concurrent_queries_share_one_negotiation() -> None:
    provider = Provider()
    n = negotiator(Index(harvested()), provider)
    first, second = await asyncio.gather(n.agreement(DID), n.agreement(DID))
    assert first == second and len(provider.requests) == 1


class OneHospital:
    """Directory naming the hospital without an agreement; channel answering under one."""

    def __init__(self) -> None:
        self.asked: list[Hospital] = []

    async def hospitals(self, named: Any = ()) -> list[Hospital]:
        return [Hospital(DID)]

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        self.asked.append(hospital)
        report = SexCodec().report(QUERY, [40, 20, 20])
        return HospitalReply(orjson.dumps(report))


async def test_the_coordinator_negotiates_before_asking_and_reports_the_agreement() -> None:
    network = OneHospital()
    queries = FederatedQueries(
        directory=network,
        channel=network,
        codec=SexCodec(),
        negotiator=negotiator(Index(harvested()), Provider()),
    )
    answer = await queries.run(QUERY)
    [asked] = network.asked
    assert asked.agreement_id == "urn:uuid:agreement-1"
    assert answer.as_json()["hospitals"][0]["agreementId"] == "urn:uuid:agreement-1"
    assert answer.hospitals[0].status == "answered"


async def test_a_failed_negotiation_asks_nothing() -> None:
    network = OneHospital()
    queries = FederatedQueries(
        directory=network,
        channel=network,
        codec=SexCodec(),
        negotiator=negotiator(Index(), Provider()),
    )
    for mode in ("plain", "secure"):
        answer = await queries.run(QUERY, mode=mode)
        assert answer.status == "failed" and answer.hospitals[0].status == "no-agreement"
    assert network.asked == []
