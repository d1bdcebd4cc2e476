"""Two connectors as separate processes over real HTTP: catalog, negotiation, transfer."""

from __future__ import annotations

from typing import Any

import httpx

from connector.clock import SystemClock
from connector.identity.agreements import agreement_payload
from connector.identity.keys import load_or_create_keys
from connector.identity.signing import decode_jws_unverified
from connector.identity.tokens import TokenIssuer
from tests.catalog.dsp_schema import wire_problems
from tests.e2e.conftest import Pair, dataset, wait_for
from tests.processes import ConnectorProcess


def _issuer(connector: ConnectorProcess) -> TokenIssuer:
    """Self-issued tokens as ``connector`` (its own keys and credentials, read from disk)."""
    keys = load_or_create_keys(connector.data_dir / "keys")
    creds = [p.read_text() for p in sorted((connector.data_dir / "credentials").glob("*.jwt"))]
    return TokenIssuer(connector.did, keys, 120, creds, SystemClock())


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

    # A fresh token for a long transfer (or after a resume): the consumer asks with its
    # self-issued token at the DataAddress's refreshEndpoint.
    refresh = props["refreshEndpoint"]
    assert refresh == address["endpoint"] + "/token" and props["expiresIn"] == "900"
    consumer_token = _issuer(pair.consumer).issue(pair.provider.did)
    fresh = httpx.post(refresh, headers={"Authorization": f"Bearer {consumer_token}"})
    assert fresh.status_code == 200, fresh.text
    new = fresh.json()
    assert new["authType"] == "bearer" and new["expiresIn"] == 900
    assert new["authorization"] != props["authorization"]
    r = httpx.get(address["endpoint"], headers={"Authorization": f"Bearer {new['authorization']}"})
    assert r.status_code == 501, r.text  # authorised (fulfilment comes later)
    # The refresh retired the token it replaced (one valid token a transfer).
    old = httpx.get(
        address["endpoint"], headers={"Authorization": f"Bearer {props['authorization']}"}
    )
    assert old.status_code == 401 and "replaced" in old.text, old.text
    # The same through the consumer's management API: its connector asks with its own token
    # and credentials, and keeps the fresh token in the transfer's DataAddress.
    kept = pair.capi.post(f"/transfers/{t['id']}/token", expect=200)
    kept_props = {p["name"]: p["value"] for p in kept["dataAddress"]["endpointProperties"]}
    assert kept_props["authorization"] not in (props["authorization"], new["authorization"])
    assert kept_props["expiresIn"] == "900" and kept_props["refreshEndpoint"] == refresh
    assert pair.capi.get(f"/transfers/{t['id']}")["dataAddress"] == kept["dataAddress"]
    r = httpx.get(
        address["endpoint"], headers={"Authorization": f"Bearer {kept_props['authorization']}"}
    )
    assert r.status_code == 501, r.text
    # It is the consumer's to ask: the provider's management API has no token to fetch.
    pt = pair.papi.get("/transfers")[0]
    assert pair.papi.http.post(f"/management/transfers/{pt['id']}/token").status_code == 409
    # The data plane token itself does not refresh; a replayed DSP token is refused.
    for token in (props["authorization"], consumer_token):
        again = httpx.post(refresh, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401, again.text
    # Another participant (here the provider's own identity) learns nothing about the transfer.
    other = _issuer(pair.provider).issue(pair.provider.did)
    assert httpx.post(refresh, headers={"Authorization": f"Bearer {other}"}).status_code == 404

    pair.capi.post(f"/transfers/{t['id']}/complete", expect=200)
    wait_for(lambda: pair.papi.get("/transfers"), lambda v: v[0]["state"] == "COMPLETED")
    late = _issuer(pair.consumer).issue(pair.provider.did)
    done = httpx.post(refresh, headers={"Authorization": f"Bearer {late}"})
    assert done.status_code == 403 and "not STARTED" in done.json()["detail"], done.text

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
    agreements = wait_for(lambda: pair.capi.get("/agreements"), lambda v: len(v) == 1)
    # What travelled keeps to the DSP schema: the offer in its compact form (the profile's
    # `phems:membership` as a full IRI), its `true` as a typed literal.
    constraints = {c["leftOperand"]: c for c in offered[0]["offer"]["permission"][0]["constraint"]}
    assert constraints["https://w3id.org/phems/ns/membership"]["rightOperand"] == {
        "@value": "true",
        "@type": "http://www.w3.org/2001/XMLSchema#boolean",
    }
    assert wire_problems(offered[0]["offer"]) == []
    assert wire_problems(agreements[0]["agreement"]) == []


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
