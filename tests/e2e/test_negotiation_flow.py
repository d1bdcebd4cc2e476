"""Two connectors as separate processes over real HTTP: catalog, negotiation, transfer."""

from __future__ import annotations

from typing import Any

import httpx

from connector.identity.agreements import agreement_payload
from connector.identity.signing import decode_jws_unverified
from tests.e2e.conftest import Pair, dataset, wait_for


def _negotiate(pair: Pair) -> tuple[dict[str, Any], dict[str, Any]]:
    pair.papi.post("/datasets", dataset(), expect=201)
    catalog = pair.capi.post(
        "/catalog/request", {"counterpartyAddress": pair.provider.url + "/dsp/2025-1"}
    )
    assert catalog["participantId"] == pair.provider.did
    [ds] = catalog["dataset"]
    offer = ds["hasPolicy"][0] | {"target": ds["@id"]}
    n = pair.capi.post(
        "/negotiations",
        {"counterpartyAddress": pair.provider.url + "/dsp/2025-1", "offer": offer},
        expect=201,
    )
    final = wait_for(
        lambda: pair.capi.get(f"/negotiations/{n['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    return n, final


def test_catalog_negotiation_transfer(pair: Pair) -> None:
    n, final = _negotiate(pair)
    assert final["state"] == "FINALIZED", final
    provider_side = wait_for(
        lambda: pair.papi.get("/negotiations"), lambda v: v and v[0]["state"] == "FINALIZED"
    )[0]
    assert provider_side["consumerPid"] == n["id"]

    [c_agreement] = pair.capi.get("/agreements")
    [p_agreement] = pair.papi.get("/agreements")
    assert c_agreement["id"] == p_agreement["id"]
    for a in (c_agreement, p_agreement):
        assert a["providerSignature"] == p_agreement["providerSignature"]
        assert a["consumerSignature"] == p_agreement["consumerSignature"]
        # Both JWS are over the canonical agreement, by the right parties' keys.
        for sig, did in (
            (a["providerSignature"], pair.provider.did),
            (a["consumerSignature"], pair.consumer.did),
        ):
            header, payload = decode_jws_unverified(sig)
            assert header["kid"].startswith(did + "#")
            assert payload == agreement_payload(a["agreement"])
    assert c_agreement["agreement"]["assignee"] == pair.consumer.did
    assert c_agreement["agreement"]["assigner"] == pair.provider.did

    t = pair.capi.post(
        "/transfers",
        {"agreementId": c_agreement["id"], "format": "FHIR-Aggregate-PULL"},
        expect=201,
    )
    started = wait_for(
        lambda: pair.capi.get(f"/transfers/{t['id']}"), lambda v: v["state"] != "REQUESTED"
    )
    assert started["state"] == "STARTED", started
    address = started["dataAddress"]
    assert address["endpointType"] == "https://w3id.org/idsa/v4.1/HTTP"
    props = {p["name"]: p["value"] for p in address["endpointProperties"]}
    assert props["authType"] == "bearer"
    # The data plane checks the token; fulfilment itself comes with the fulfilment modules.
    r = httpx.get(
        address["endpoint"], headers={"Authorization": f"Bearer {props['authorization']}"}
    )
    assert r.status_code == 501, r.text
    forged = props["authorization"][:-4] + (
        "AAAA" if not props["authorization"].endswith("AAAA") else "BBBB"
    )
    assert (
        httpx.get(address["endpoint"], headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )

    pair.capi.post(f"/transfers/{t['id']}/complete", expect=200)
    wait_for(lambda: pair.papi.get("/transfers"), lambda v: v[0]["state"] == "COMPLETED")

    events = [e for e in pair.provider.log().splitlines() if "Traceback" in e]
    assert events == []


def test_provider_initiated_offer(pair: Pair) -> None:
    pair.papi.post("/datasets", dataset(), expect=201)
    n = pair.papi.post(
        "/negotiations/offers",
        {
            "counterpartyAddress": pair.consumer.url + "/dsp/2025-1",
            "datasetId": "paediatric-asthma",
            "offerId": "offer-research",
        },
        expect=201,
    )
    offered = wait_for(
        lambda: pair.capi.get("/negotiations"), lambda v: v and v[0]["state"] == "OFFERED"
    )
    pair.capi.post(f"/negotiations/{offered[0]['id']}/accept", expect=200)
    final = wait_for(
        lambda: pair.papi.get(f"/negotiations/{n['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    assert final["state"] == "FINALIZED", final
    # The provider records FINALIZED when it sends the event; the consumer when it arrives.
    wait_for(lambda: pair.capi.get("/agreements"), lambda v: len(v) == 1)


def test_policy_failure_terminates_with_reason(pair: Pair) -> None:
    permit_offer = {
        "@id": "offer-permit",
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "phems:dataPermit", "operator": "eq", "rightOperand": True}
                ],
            }
        ],
    }
    pair.papi.post("/datasets", dataset(offers=[permit_offer]), expect=201)
    offer = permit_offer | {"target": "paediatric-asthma"}
    n = pair.capi.post(
        "/negotiations",
        {"counterpartyAddress": pair.provider.url + "/dsp/2025-1", "offer": offer},
        expect=201,
    )
    final = wait_for(
        lambda: pair.capi.get(f"/negotiations/{n['id']}"),
        lambda v: v["state"] in ("FINALIZED", "TERMINATED"),
    )
    assert final["state"] == "TERMINATED"
    assert "dataPermit" in " ".join(final["terminationReason"])
