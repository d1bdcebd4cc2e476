"""A consumer that repeats its initial request at once (a retry racing the original, or two
replicas of the consumer's sender) gets one negotiation or transfer: every copy is answered
with the same ACK, none with a 5xx. On PostgreSQL the copies really run at the same time
(before the fix, all but one failed with 500: the unique constraint fired at the insert).
The same holds for a provider repeating its initial offer to a consumer on PostgreSQL
(before the fix, each copy made a negotiation of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import RESEARCH_OFFER, Authority, Pair, dataset, launched_pair
from tests.e2e.test_dsp_bad_input import CTX
from tests.e2e.test_negotiation_flow import _issuer, _negotiate


def test_simultaneous_copies_of_an_initial_request_make_one_negotiation(pair: Pair) -> None:
    pair.papi.post("/datasets", dataset(), expect=201)
    issuer = _issuer(pair.consumer)
    for round_ in range(3):
        body: dict[str, Any] = {
            "@context": CTX,
            "@type": "ContractRequestMessage",
            "consumerPid": f"urn:uuid:race-{round_}",
            "offer": RESEARCH_OFFER | {"target": "paediatric-asthma"},
            "callbackAddress": pair.consumer.url + "/dsp/2025-1",
        }
        tokens = [issuer.issue(pair.provider.did) for _ in range(8)]  # each copy its own
        answers = asyncio.run(_all_at_once(pair.provider.url, body, tokens))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * 7 + [201], [r.text for r in answers]
        assert len({r.json()["providerPid"] for r in answers}) == 1
        mine = [
            n
            for n in pair.papi.get("/negotiations")
            if n.get("consumerPid") == f"urn:uuid:race-{round_}"
        ]
        assert len(mine) == 1


def test_a_repeated_request_gets_the_recorded_negotiation_even_once_it_would_be_refused(
    pair: Pair,
) -> None:
    """A consumer's retry of its initial request is answered with the negotiation recorded the
    first time (200, same providerPid), also after the dataset was retired; a new request for
    the retired dataset is refused."""
    pair.papi.post("/datasets", dataset(), expect=201)
    issuer = _issuer(pair.consumer)

    def send(consumer_pid: str) -> httpx.Response:
        body = {
            "@context": CTX,
            "@type": "ContractRequestMessage",
            "consumerPid": consumer_pid,
            "offer": RESEARCH_OFFER | {"target": "paediatric-asthma"},
            "callbackAddress": pair.consumer.url + "/dsp/2025-1",
        }
        return httpx.post(
            pair.provider.url + "/dsp/2025-1/negotiations/request",
            json=body,
            headers={"Authorization": f"Bearer {issuer.issue(pair.provider.did)}"},
            timeout=30,
        )

    first = send("urn:uuid:retry-1")
    assert first.status_code == 201, first.text
    again = send("urn:uuid:retry-1")
    # (its state may have moved on: the agreement goes to a consumer that never asked)
    assert again.status_code == 200, again.text
    assert again.json()["providerPid"] == first.json()["providerPid"]
    pair.papi.post("/datasets/paediatric-asthma/retire", expect=200)
    late = send("urn:uuid:retry-1")
    assert late.status_code == 200, late.text
    assert late.json()["providerPid"] == first.json()["providerPid"]
    refused = send("urn:uuid:retry-2")
    assert refused.status_code == 400, refused.text
    assert refused.json()["@type"] == "ContractNegotiationError"
    mine = [n for n in pair.papi.get("/negotiations") if n.get("consumerPid") == "urn:uuid:retry-1"]
    assert len(mine) == 1


def test_simultaneous_copies_of_a_transfer_request_make_one_transfer(pair: Pair) -> None:
    """The same for transfers (provider on PostgreSQL), after a real negotiation."""
    _, final = _negotiate(pair)
    assert final["state"] == "FINALIZED"
    [agreement] = pair.capi.get("/agreements")
    issuer = _issuer(pair.consumer)
    body = {
        "@context": CTX,
        "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:transfer-race",
        "agreementId": agreement["id"],
        "format": "FHIR-Aggregate-PULL",
        "callbackAddress": pair.consumer.url + "/dsp/2025-1",
    }
    tokens = [issuer.issue(pair.provider.did) for _ in range(8)]
    answers = asyncio.run(_all_at_once(pair.provider.url, body, tokens, "/transfers/request"))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 7 + [201], [r.text for r in answers]
    assert len({r.json()["providerPid"] for r in answers}) == 1
    mine = [t for t in pair.papi.get("/transfers") if t.get("consumerPid") == body["consumerPid"]]
    assert len(mine) == 1


def test_simultaneous_copies_of_an_initial_offer_make_one_negotiation(
    tmp_path: Path, authority: Authority, pg_db_factory: Callable[[], str]
) -> None:
    """A provider (no database needed beyond its own) offers to a consumer on PostgreSQL."""
    with launched_pair(
        tmp_path, authority, consumer_env={"PHEMS_DATABASE_URL": pg_db_factory()}
    ) as pair:
        provider, consumer, capi = pair.provider, pair.consumer, pair.capi
        issuer = _issuer(provider)
        for round_ in range(3):
            body: dict[str, Any] = {
                "@context": CTX,
                "@type": "ContractOfferMessage",
                "providerPid": f"urn:uuid:offer-race-{round_}",
                "offer": RESEARCH_OFFER | {"target": "paediatric-asthma"},
                "callbackAddress": provider.url + "/dsp/2025-1",
            }
            tokens = [issuer.issue(consumer.did) for _ in range(8)]
            answers = asyncio.run(_all_at_once(consumer.url, body, tokens, "/negotiations/offers"))
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200] * 7 + [201], [r.text for r in answers]
            assert len({r.json()["consumerPid"] for r in answers}) == 1
            mine = [
                n
                for n in capi.get("/negotiations")
                if n.get("providerPid") == f"urn:uuid:offer-race-{round_}"
            ]
            assert len(mine) == 1 and mine[0]["state"] == "OFFERED", mine
        assert "Traceback" not in consumer.log()


async def _all_at_once(
    url: str, body: dict[str, Any], tokens: list[str], path: str = "/negotiations/request"
) -> list[httpx.Response]:
    """Open a connection per copy first, then send all copies in the same instant."""
    clients = [httpx.AsyncClient(base_url=url + "/dsp/2025-1", timeout=30) for _ in tokens]
    try:
        await asyncio.gather(*(c.get(url + "/healthz") for c in clients))  # connect
        return list(
            await asyncio.gather(
                *(
                    c.post(
                        path,
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    for c, token in zip(clients, tokens, strict=True)
                )
            )
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
