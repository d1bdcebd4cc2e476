"""Bad input on the DSP endpoints of a real provider process: clear DSP error bodies, the right
status, and no change to stored state. Requests are crafted with the consumer's own keys. At
the end, the same odd values in the management API: problem+json, never a 5xx."""

from __future__ import annotations

import copy
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.clock import FixedClock, SystemClock
from connector.identity.agreements import sign_agreement
from connector.identity.keys import load_or_create_keys
from connector.identity.tokens import TokenIssuer
from tests.conftest import free_port
from tests.e2e.conftest import RESEARCH_OFFER, Api, Authority, dataset, launch, wait_for
from tests.processes import ConnectorProcess, stop

CTX = ["https://w3id.org/dspace/2025/1/context.jsonld"]


class Peer:
    """Speaks DSP to the provider as a given connector, with that connector's keys."""

    def __init__(self, me: ConnectorProcess, provider: ConnectorProcess) -> None:
        self.me = me
        self.provider = provider
        self.keys = load_or_create_keys(me.data_dir / "keys")
        creds = [p.read_text() for p in sorted((me.data_dir / "credentials").glob("*.jwt"))]
        self.issuer = TokenIssuer(me.did, self.keys, 120, creds, SystemClock())
        self.http = httpx.Client(base_url=provider.url + "/dsp/2025-1", timeout=20)

    def token(self, **kw: Any) -> str:
        return self.issuer.issue(kw.get("aud", self.provider.did))

    def post(
        self, path: str, body: Any, token: str | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token or self.token()}",
            "Content-Type": "application/json",
        }
        if raw is not None:
            return self.http.post(path, content=raw, headers=headers)
        return self.http.post(path, json=body, headers=headers)

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        return self.http.get(path, headers={"Authorization": f"Bearer {token or self.token()}"})


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, authority: Authority
) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("badinput")
    pp, pc, pi = free_port(), free_port(), free_port()
    ports = [pp, pc, pi]
    procs: list[ConnectorProcess] = []
    try:
        provider = launch(tmp, "provider", pp, ports, authority)
        procs.append(provider)
        consumer = launch(
            tmp,
            "consumer",
            pc,
            ports,
            authority,
            credentials={"m.jwt": authority.credential(f"did:web:127.0.0.1%3A{pc}")},
        )
        procs.append(consumer)
        intruder = launch(
            tmp,
            "intruder",
            pi,
            ports,
            authority,
            credentials={"m.jwt": authority.credential(f"did:web:127.0.0.1%3A{pi}")},
        )
        procs.append(intruder)
        papi = Api(provider)
        papi.post("/datasets", dataset(), expect=201)
        peers = Peer(consumer, provider), Peer(intruder, provider)
        yield {"provider": provider, "papi": papi, "consumer": peers[0], "intruder": peers[1]}
        for client in (papi.http, peers[0].http, peers[1].http):
            client.close()
    finally:
        for p in procs:
            stop(p.proc)


def message(type_: str, **fields: Any) -> dict[str, Any]:
    """A DSP message of ``type_`` with ``fields``, as a peer sends it."""
    return {"@context": CTX, "@type": type_, **fields}


def request_body(consumer: Peer, **overrides: Any) -> dict[str, Any]:
    body = {
        "@context": CTX,
        "@type": "ContractRequestMessage",
        "consumerPid": f"urn:uuid:test-{datetime.now(UTC).timestamp()}",
        "offer": RESEARCH_OFFER | {"target": "paediatric-asthma"},
        "callbackAddress": consumer.me.url + "/dsp/2025-1",
    }
    body.update(overrides)
    return body


def negotiation_count(world: dict[str, Any]) -> int:
    return len(world["papi"].get("/negotiations"))


def assert_dsp_error(r: httpx.Response, status: int, type_: str, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["@type"] == type_
    assert body["code"]
    text = " ".join(body["reason"])
    for w in words:
        assert w in text, text


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", ["malformed JSON"]),
        (
            b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],'
            b' "@type": "ContractOfferMessage"}',
            ["wrong @type"],
        ),
    ],
)
def test_unparseable_requests(world: dict[str, Any], raw: bytes, words: list[str]) -> None:
    before = negotiation_count(world)
    r = world["consumer"].post("/negotiations/request", None, raw=raw)
    assert_dsp_error(r, 400, "ContractNegotiationError", *words)
    assert negotiation_count(world) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda b: b.pop("consumerPid"), ["consumerPid"]),
        (lambda b: b.update(callbackAddress="not a url"), ["callbackAddress"]),
        # Not the caller's own host: we would be made to POST to someone else's server.
        (lambda b: b.update(callbackAddress="http://10.0.0.1/dsp"), ["own host"]),
        (lambda b: b.update(offer=b["offer"] | {"@id": "no-such-offer"}), ["no-such-offer"]),
        (lambda b: b.update(offer=b["offer"] | {"target": "no-such-dataset"}), ["no-such-dataset"]),
        (
            lambda b: b["offer"]["permission"][0]["constraint"][0].update(rightOperand="marketing"),
            ["differs"],
        ),
        (  # int() refuses 5000 digits with a ValueError: it must not become a 500.
            lambda b: b["offer"]["permission"][0]["constraint"].append(
                {"leftOperand": "count", "operator": "lteq", "rightOperand": "1" * 5000}
            ),
            ["more than 64 characters"],
        ),
    ],
    ids=[
        "missing-field",
        "bad-callback",
        "foreign-callback-host",
        "unknown-offer",
        "unknown-dataset",
        "changed-offer",
        "absurd-number",
    ],
)
def test_invalid_requests_change_nothing(
    world: dict[str, Any], change: Any, words: list[str]
) -> None:
    body = copy.deepcopy(request_body(world["consumer"]))
    change(body)
    before = negotiation_count(world)
    r = world["consumer"].post("/negotiations/request", body)
    assert_dsp_error(r, 400, "ContractNegotiationError", *words)
    assert negotiation_count(world) == before


def test_tokens_refused(world: dict[str, Any]) -> None:
    consumer: Peer = world["consumer"]
    body = request_body(consumer)
    before = negotiation_count(world)
    r = consumer.http.post("/negotiations/request", json=body)
    assert r.status_code == 401
    good = consumer.token()
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    assert consumer.post("/negotiations/request", body, token=forged).status_code == 401
    wrong_aud = consumer.token(aud="did:web:somebody.else")
    r = consumer.post("/negotiations/request", body, token=wrong_aud)
    assert r.status_code == 401 and "aud" in " ".join(r.json()["reason"])
    old = TokenIssuer(
        consumer.me.did, consumer.keys, 120, [], FixedClock(datetime.now(UTC) - timedelta(hours=1))
    ).issue(world["provider"].did)
    r = consumer.post("/negotiations/request", body, token=old)
    assert r.status_code == 401 and "expired" in " ".join(r.json()["reason"])
    assert negotiation_count(world) == before
    # A replayed token: accepted once, refused the second time.
    token = consumer.token()
    assert consumer.get("/catalog/datasets/paediatric-asthma", token=token).status_code == 200
    r = consumer.get("/catalog/datasets/paediatric-asthma", token=token)
    assert r.status_code == 401 and "jti" in " ".join(r.json()["reason"])


def test_third_party_cannot_see_or_touch_a_negotiation(world: dict[str, Any]) -> None:
    consumer: Peer = world["consumer"]
    r = consumer.post("/negotiations/request", request_body(consumer))
    assert r.status_code == 201, r.text
    pid = r.json()["providerPid"]
    assert consumer.get(f"/negotiations/{pid}").status_code == 200
    intruder: Peer = world["intruder"]
    assert_dsp_error(intruder.get(f"/negotiations/{pid}"), 404, "ContractNegotiationError")
    term = {
        "@context": CTX,
        "@type": "ContractNegotiationTerminationMessage",
        "providerPid": pid,
        "consumerPid": r.json()["consumerPid"],
        "code": "x",
        "reason": ["mine now"],
    }
    assert_dsp_error(
        intruder.post(f"/negotiations/{pid}/termination", term), 404, "ContractNegotiationError"
    )
    # (The real consumer process never heard of this crafted negotiation, so the provider's
    # agreement is refused and it ends TERMINATED on its own; but not by the intruder.)
    n = world["papi"].get(f"/negotiations/{pid}")
    assert "mine now" not in " ".join(n["terminationReason"])


def waiting_in_agreed(consumer: Peer) -> tuple[str, str]:
    """A negotiation the provider has agreed to, its (providerPid, consumerPid). Its callback
    is one nobody listens on: the provider's agreement waits in its outbox (retrying), so the
    negotiation stays AGREED while a test probes it."""
    silent = f"http://127.0.0.1:{free_port()}/dsp/2025-1"
    r = consumer.post("/negotiations/request", request_body(consumer, callbackAddress=silent))
    pid, cid = r.json()["providerPid"], r.json()["consumerPid"]
    wait_for(lambda: consumer.get(f"/negotiations/{pid}").json()["state"], lambda s: s == "AGREED")
    return pid, cid


def test_invalid_transition_is_400_and_changes_nothing(world: dict[str, Any]) -> None:
    consumer: Peer = world["consumer"]
    pid, cid = waiting_in_agreed(consumer)
    # An out-of-order FINALIZED event from the consumer.
    event = message(
        "ContractNegotiationEventMessage", providerPid=pid, consumerPid=cid, eventType="FINALIZED"
    )
    assert_dsp_error(
        consumer.post(f"/negotiations/{pid}/events", event),
        400,
        "ContractNegotiationError",
        "not allowed",
    )
    assert consumer.get(f"/negotiations/{pid}").json()["state"] == "AGREED"


def test_verification_without_consumer_signature_is_400(world: dict[str, Any]) -> None:
    """A peer that does not counter-sign (the DSP TCK, Eclipse EDC) is told so plainly; the
    provider's own signature inside the agreement is never taken for the consumer's."""
    consumer: Peer = world["consumer"]
    pid, cid = waiting_in_agreed(consumer)
    verification = message("ContractAgreementVerificationMessage", providerPid=pid, consumerPid=cid)
    assert_dsp_error(
        consumer.post(f"/negotiations/{pid}/agreement/verification", verification),
        400,
        "ContractNegotiationError",
        "no consumer signature",
        "https://w3id.org/phems/ns/signature",
    )
    assert consumer.get(f"/negotiations/{pid}").json()["state"] == "AGREED"


def test_a_contract_request_is_answered_requested_and_decided_after(
    world: dict[str, Any],
) -> None:
    """The 201 carries the state the request created; the agreement is the provider's
    decision after the answer, and GET shows it once recorded."""
    consumer: Peer = world["consumer"]
    silent = f"http://127.0.0.1:{free_port()}/dsp/2025-1"
    r = consumer.post("/negotiations/request", request_body(consumer, callbackAddress=silent))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["@type"] == "ContractNegotiation" and body["state"] == "REQUESTED", body
    pid = body["providerPid"]
    wait_for(lambda: consumer.get(f"/negotiations/{pid}").json()["state"], lambda s: s == "AGREED")


def test_a_transfer_request_is_answered_requested_and_started_after(
    world: dict[str, Any],
) -> None:
    consumer: Peer = world["consumer"]
    capi = Api(consumer.me)
    try:
        offer = RESEARCH_OFFER | {"target": "paediatric-asthma"}
        n = capi.post(
            "/negotiations",
            {"counterpartyAddress": world["provider"].url + "/dsp/2025-1", "offer": offer},
            expect=201,
        )
        wait_for(
            lambda: capi.get(f"/negotiations/{n['id']}")["state"],
            lambda s: s in ("FINALIZED", "TERMINATED"),
        )
        [agreement] = [a for a in capi.get("/agreements") if a["negotiationId"] == n["id"]]
    finally:
        capi.http.close()
    request = message(
        "TransferRequestMessage",
        consumerPid=f"urn:uuid:t-{datetime.now(UTC).timestamp()}",
        agreementId=agreement["id"],
        format="FHIR-Aggregate-PULL",
        # Nobody listens: the start stays in the provider's outbox, the transfer STARTED.
        callbackAddress=f"http://127.0.0.1:{free_port()}/dsp/2025-1",
    )
    r = consumer.post("/transfers/request", request)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["@type"] == "TransferProcess" and body["state"] == "REQUESTED", body
    pid = body["providerPid"]
    wait_for(lambda: consumer.get(f"/transfers/{pid}").json()["state"], lambda s: s == "STARTED")


def refused_unchanged(world: dict[str, Any], pid: str, path: str, body: dict[str, Any]) -> None:
    """A message the transition table does not allow and that was never received before:
    400 with the DSP error body, the negotiation unchanged."""
    consumer: Peer = world["consumer"]
    before = world["papi"].get(f"/negotiations/{pid}")
    assert_dsp_error(
        consumer.post(f"/negotiations/{pid}/{path}", body),
        400,
        "ContractNegotiationError",
        "not allowed",
    )
    assert world["papi"].get(f"/negotiations/{pid}") == before


def accepted_event(pid: str, cid: str) -> dict[str, Any]:
    return message(
        "ContractNegotiationEventMessage", providerPid=pid, consumerPid=cid, eventType="ACCEPTED"
    )


def test_an_accepted_event_never_sent_is_refused_in_agreed(world: dict[str, Any]) -> None:
    pid, cid = waiting_in_agreed(world["consumer"])
    refused_unchanged(world, pid, "events", accepted_event(pid, cid))


def test_a_counter_request_is_refused_in_agreed(world: dict[str, Any]) -> None:
    pid, cid = waiting_in_agreed(world["consumer"])
    counter = request_body(world["consumer"], providerPid=pid, consumerPid=cid)
    refused_unchanged(world, pid, "request", counter)


def finalized(world: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A negotiation the provider has FINALIZED (its event waiting in its outbox), with the
    consumer's verification: (providerPid, consumerPid, verification)."""
    consumer: Peer = world["consumer"]
    pid, cid = waiting_in_agreed(consumer)
    agreement = world["papi"].get(f"/negotiations/{pid}")["agreement"]
    signature = sign_agreement(agreement, consumer.me.did, consumer.keys.signing)
    verification = message(
        "ContractAgreementVerificationMessage",
        providerPid=pid,
        consumerPid=cid,
        **{"https://w3id.org/phems/ns/signature": signature},
    )
    r = consumer.post(f"/negotiations/{pid}/agreement/verification", verification)
    assert r.status_code == 200 and r.json()["state"] == "VERIFIED", r.text  # what it created
    wait_for(lambda: world["papi"].get(f"/negotiations/{pid}")["state"], lambda s: s == "FINALIZED")
    return pid, cid, verification


def test_an_accepted_event_is_refused_in_finalized(world: dict[str, Any]) -> None:
    pid, cid, _ = finalized(world)
    refused_unchanged(world, pid, "events", accepted_event(pid, cid))


def test_in_finalized_only_the_verification_received_is_a_repeat(world: dict[str, Any]) -> None:
    pid, _, verification = finalized(world)
    # Sent again (its answer lost): the same message, answered with the negotiation as it is.
    again = world["consumer"].post(f"/negotiations/{pid}/agreement/verification", verification)
    assert again.status_code == 200 and again.json()["state"] == "FINALIZED", again.text
    other = verification | {"consumerPid": "urn:uuid:someone-else"}
    refused_unchanged(world, pid, "agreement/verification", other)


def test_catalog_filter_unsupported_and_unknown_dataset(world: dict[str, Any]) -> None:
    consumer: Peer = world["consumer"]
    r = consumer.post(
        "/catalog/request",
        {"@context": CTX, "@type": "CatalogRequestMessage", "filter": [{"x": 1}]},
    )
    assert_dsp_error(r, 400, "CatalogError", "filter")
    assert_dsp_error(consumer.get("/catalog/datasets/nope"), 404, "CatalogError")


def test_transfer_without_agreement_refused(world: dict[str, Any]) -> None:
    consumer: Peer = world["consumer"]
    body = {
        "@context": CTX,
        "@type": "TransferRequestMessage",
        "consumerPid": "urn:uuid:t-1",
        "agreementId": "urn:uuid:none",
        "format": "FHIR-Aggregate-PULL",
        "callbackAddress": consumer.me.url + "/dsp/2025-1",
    }
    before = world["papi"].get("/transfers")
    assert_dsp_error(consumer.post("/transfers/request", body), 400, "TransferError", "agreement")
    assert world["papi"].get("/transfers") == before


# -- every field of every message, replaced by something odd: never a 5xx -------------------

_DELETE = object()
_ODD: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    "",
    "1" * 5000,
    "x" * 100_000,
    "\u0000",
    "urn:uuid:" + "é" * 300,
    [],
    {},
    [None],
    [[[]]],
    {"@id": None},
    {"@value": {}},
    {"@value": "1E+999999999", "@type": "http://www.w3.org/2001/XMLSchema#double"},
]


# Fewer, for the management API (each dataset that passes is checked against the SHACL shapes).
_ODD_FEW: list[Any] = [None, 0, "", "1" * 5000, [], {}, [None], {"@id": None}]


def _mutations(
    body: Any, path: tuple[Any, ...] = (), odd: list[Any] = _ODD
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, replacement) for every node of ``body``, and the deletion of every key."""
    for value in odd:
        yield path, value
    children = (
        body.items()
        if isinstance(body, dict)
        else enumerate(body)
        if isinstance(body, list)
        else ()
    )
    for key, child in children:
        yield from _mutations(child, (*path, key), odd)
        if isinstance(body, dict):
            yield (*path, key), _DELETE


def _mutated(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return copy.deepcopy(value)
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def test_odd_values_anywhere_never_cause_a_5xx(world: dict[str, Any]) -> None:
    """About 2500 messages, each a valid one with one field replaced by an odd value (wrong
    type, empty, huge, absurd numbers, deep nesting) or removed: each gets a 4xx or a 2xx."""
    consumer: Peer = world["consumer"]
    pid, cid = waiting_in_agreed(consumer)
    pids = {"providerPid": pid, "consumerPid": cid}

    data_address = {
        "@type": "DataAddress",
        "endpointType": "https://w3id.org/idsa/v4.1/HTTP",
        "endpoint": "https://example.org/data",
        "endpointProperties": [{"@type": "EndpointProperty", "name": "a", "value": "b"}],
    }
    bodies = {
        "/negotiations/request": request_body(consumer),
        f"/negotiations/{pid}/request": message(
            "ContractRequestMessage", **pids, offer=RESEARCH_OFFER | {"target": "paediatric-asthma"}
        ),
        f"/negotiations/{pid}/events": message(
            "ContractNegotiationEventMessage", **pids, eventType="ACCEPTED"
        ),
        f"/negotiations/{pid}/agreement/verification": message(
            "ContractAgreementVerificationMessage",
            **pids,
            **{"https://w3id.org/phems/ns/signature": "a.b.c"},
        ),
        f"/negotiations/{pid}/termination": message(
            "ContractNegotiationTerminationMessage", **pids, code="x", reason=["r"]
        ),
        "/catalog/request": message(
            "CatalogRequestMessage", filter=[{"@type": "QuerySpec", "offset": 0, "limit": 5}]
        ),
        "/catalog/datasets/request": message("DatasetRequestMessage", dataset="paediatric-asthma"),
        "/transfers/request": message(
            "TransferRequestMessage",
            consumerPid="urn:uuid:t-1",
            agreementId="urn:uuid:no-such-agreement",
            format="FHIR-Aggregate-PULL",
            callbackAddress=consumer.me.url + "/dsp/2025-1",
            dataAddress=data_address,
        ),
    }
    # The consumer's callbacks, called by the provider's identity: an initial offer (which
    # opens a negotiation on the consumer's side), an agreement and a transfer start for it.
    as_provider = Peer(world["provider"], consumer.me)
    offered = as_provider.post(
        "/negotiations/offers",
        message(
            "ContractOfferMessage",
            providerPid="urn:uuid:p-odd",
            offer=RESEARCH_OFFER | {"target": "paediatric-asthma"},
            callbackAddress=world["provider"].url + "/dsp/2025-1",
        ),
    )
    assert offered.status_code == 201, offered.text
    ccid = offered.json()["consumerPid"]
    theirs = {"providerPid": "urn:uuid:p-odd", "consumerPid": ccid}
    callbacks = {
        "/negotiations/offers": message(
            "ContractOfferMessage",
            providerPid="urn:uuid:p-odd-2",
            offer=RESEARCH_OFFER | {"target": "paediatric-asthma"},
            callbackAddress=world["provider"].url + "/dsp/2025-1",
        ),
        f"/negotiations/{ccid}/agreement": message(
            "ContractAgreementMessage",
            **theirs,
            agreement={
                "@id": "urn:uuid:a-odd",
                "@type": "Agreement",
                "target": "paediatric-asthma",
                "assigner": world["provider"].did,
                "assignee": consumer.me.did,
                "timestamp": "2026-11-29T12:00:00Z",
                "permission": RESEARCH_OFFER["permission"],
                "https://w3id.org/phems/ns/signature": "a.b.c",
            },
        ),
        f"/transfers/{ccid}/start": message(
            "TransferStartMessage", **theirs, dataAddress=data_address
        ),
    }
    server_errors: list[str] = []
    sent = 0
    targets = [(consumer, url, body) for url, body in bodies.items()]
    targets += [(as_provider, url, body) for url, body in callbacks.items()]
    for peer, url, body in targets:
        for path, value in _mutations(body):
            mutated = _mutated(body, path, value)
            if (
                url == "/negotiations/request"
                and isinstance(mutated, dict)
                and path != ("consumerPid",)
            ):
                mutated["consumerPid"] = f"urn:uuid:odd-{sent}"  # each one new, not a repeat
            sent += 1
            r = peer.post(url, mutated)
            if r.status_code >= 500:
                server_errors.append(f"{url} {path} = {value!r:.60}: {r.status_code} {r.text:.200}")
    as_provider.http.close()
    assert sent > 2000
    assert server_errors == []


# -- the management API: the same sweep, problem+json 4xx or 2xx, never a 5xx ----------------


def test_management_api_odd_values_never_cause_a_5xx(world: dict[str, Any]) -> None:
    papi: Api = world["papi"]
    callback = world["consumer"].me.url + "/dsp/2025-1"
    offer = RESEARCH_OFFER | {"target": "paediatric-asthma"}
    requests = [
        ("POST", "/datasets", dataset("odd")),
        ("PUT", "/datasets/paediatric-asthma", dataset()),
        ("POST", "/negotiations", {"counterpartyAddress": callback, "offer": offer}),
        (
            "POST",
            "/negotiations/offers",
            {"counterpartyAddress": callback, "datasetId": "paediatric-asthma", "offerId": "x"},
        ),
        ("POST", "/catalog/request", {"counterpartyAddress": callback}),
        ("POST", "/transfers", {"agreementId": "urn:uuid:none", "format": "FHIR-Aggregate-PULL"}),
        ("POST", "/negotiations/urn:uuid:none/terminate", {"reason": "x"}),
    ]
    server_errors: list[str] = []
    sent = 0
    for method, path, body in requests:
        # A dataset's HealthDCAT-AP metadata is left whole (tests/catalog covers it).
        metadata = body.pop("metadata", None)
        for where, value in _mutations(body, odd=_ODD_FEW):
            mutated = _mutated(body, where, value)
            if isinstance(mutated, dict) and metadata is not None:
                mutated["metadata"] = metadata
            if path == "/datasets" and isinstance(mutated, dict) and where != ("id",):
                mutated["id"] = f"odd-{sent}"  # a new dataset each time, not a conflict
            sent += 1
            r = papi.http.request(method, "/management" + path, json=mutated)
            if r.status_code >= 500 or (
                r.status_code >= 400 and r.headers["content-type"] != "application/problem+json"
            ):
                server_errors.append(f"{method} {path} {where} = {value!r:.60}: {r.text:.200}")
    assert sent > 500
    assert server_errors == []


def test_offer_type_is_checked_and_filled_in(world: dict[str, Any]) -> None:
    """Found by the sweep above: an offer without ``@type`` passed our policy check but not the
    catalog's (a 500); a request for one failed building its DSP message (a 500)."""
    papi: Api = world["papi"]
    untyped = {k: v for k, v in RESEARCH_OFFER.items() if k != "@type"}
    created = papi.post("/datasets", dataset("untyped", offers=[untyped]), expect=201)
    assert created["offers"][0]["@type"] == "Offer"
    as_set = papi.http.post(
        "/management/datasets", json=dataset("as-set", offers=[untyped | {"@type": "Set"}])
    )
    assert as_set.status_code == 400 and "@type must be Offer" in as_set.json()["detail"]
    request = papi.http.post(
        "/management/negotiations",
        json={
            "counterpartyAddress": world["consumer"].me.url + "/dsp/2025-1",
            "offer": untyped | {"target": "untyped"},
        },
    )
    assert request.status_code == 400, request.text
    assert "offer: " in request.json()["detail"] and "Offer" in request.json()["detail"]


def test_odd_ids_queries_headers_and_bodies_never_cause_a_5xx(world: dict[str, Any]) -> None:
    """Odd process and dataset ids in paths, odd paging queries, Authorization headers and
    bodies, on the DSP, management, data plane and catalog page routes."""
    consumer: Peer = world["consumer"]
    papi: Api = world["papi"]
    site = world["provider"].url
    catalog_request = {"@context": CTX, "@type": "CatalogRequestMessage"}
    start = {
        "@context": CTX,
        "@type": "TransferStartMessage",
        "providerPid": "p",
        "consumerPid": "c",
    }
    answers: list[tuple[str, httpx.Response]] = []
    for odd in ["x", "%00", "%2F..%2F..", "é" * 300, "1" * 5000, "%", "a/b/c", "..", "%FF%FE"]:
        ascii_ = odd.encode("ascii", "ignore").decode()
        answers += [
            (f"GET /negotiations/{odd:.20}", consumer.get(f"/negotiations/{odd}")),
            (f"GET /transfers/{odd:.20}", consumer.get(f"/transfers/{odd}")),
            (f"GET /catalog/datasets/{odd:.20}", consumer.get(f"/catalog/datasets/{odd}")),
            (f"POST /transfers/{odd:.20}/start", consumer.post(f"/transfers/{odd}/start", start)),
            (f"mgmt negotiation {odd:.20}", papi.http.get(f"/management/negotiations/{odd}")),
            (f"mgmt dataset {odd:.20}", papi.http.get(f"/management/datasets/{odd}")),
            (
                f"mgmt approve {odd:.20}",
                papi.http.post(f"/management/negotiations/{odd}/approve", json={}),
            ),
            (
                f"mgmt complete {odd:.20}",
                papi.http.post(f"/management/transfers/{odd}/complete", json={}),
            ),
            (
                f"data plane {odd:.20}",
                httpx.get(
                    f"{site}/dataplane/transfers/{odd}",
                    headers={"Authorization": f"Bearer x{ascii_}"},
                ),
            ),
            (f"catalog page {odd:.20}", httpx.get(f"{site}/catalog/datasets/{odd}")),
        ]
    for query in [
        "limit=abc",
        "page=0",
        "offset=-5",
        "offset=" + "9" * 30,
        "limit=1001",
        "limit=1e3",
    ]:
        answers += [
            (f"catalog ?{query}", consumer.post(f"/catalog/request?{query}", catalog_request)),
            (f"mgmt list ?{query}", papi.http.get(f"/management/negotiations?{query}&role=x")),
            (f"catalog page ?{query}", httpx.get(f"{site}/catalog?{query}&q=%00%FF")),
        ]
    for auth in ["", "Bearer", "Basic abc", "Bearer " + "a" * 100_000, "Bearer a.b.c", "Bearer .."]:
        answers += [
            (
                f"Authorization {auth:.20}",
                consumer.http.post(
                    "/catalog/request", json=catalog_request, headers={"Authorization": auth}
                ),
            ),
            (
                f"mgmt Authorization {auth:.20}",
                httpx.get(f"{site}/management/negotiations", headers={"Authorization": auth}),
            ),
        ]
    for content_type, content in [
        ("text/plain", b"{}"),
        ("application/json", b""),
        ("application/json", b"\xff\xfe"),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/json", b"[" * 100_000),
        ("application/json", b'{"a":' * 5000 + b"1" + b"}" * 5000),
        ("application/json", b"1" * 5000),
        ("application/json; charset=utf-16", '{"a":1}'.encode("utf-16")),
    ]:
        headers = {"Authorization": f"Bearer {consumer.token()}", "Content-Type": content_type}
        answers += [
            (
                f"{content_type} {content[:8]!r}",
                consumer.http.post("/negotiations/request", content=content, headers=headers),
            ),
            (
                f"mgmt {content_type} {content[:8]!r}",
                papi.http.post(
                    "/management/datasets", content=content, headers={"Content-Type": content_type}
                ),
            ),
        ]
    server_errors = [
        f"{what}: {r.status_code} {r.text:.150}" for what, r in answers if r.status_code >= 500
    ]
    assert len(answers) > 100
    assert server_errors == []


class _OddPeer(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``answer`` (status, content type, body) of its server."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, content_type, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status == 302:
            self.send_header("Location", f"http://127.0.0.1:{free_port()}/elsewhere")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


def test_a_peer_answering_nonsense_is_a_502_or_a_report(world: dict[str, Any]) -> None:
    """The management API's calls to a counterparty (its catalog, a harvest) when the peer
    answers garbage, nothing, too much or too deep: an upstream error (502) or a harvest report
    naming the failure, never a 500."""
    catalog = b'{"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"], "@type": "Catalog"'
    answers = [
        (200, "application/json", b"not json"),
        (200, "application/json", b"[]"),
        (200, "application/json", b"[" * 100_000),
        (
            200,
            "application/json",
            catalog + b', "@id": "c", "x": ' + b"[" * 500 + b"]" * 500 + b"}",
        ),
        (200, "application/json", b"x" * 3_000_000),
        (200, "text/html", b"<html>"),
        (500, "application/json", b'{"code": "x"}'),
        (404, "text/plain", b"no"),
        (302, "text/plain", b""),
        (200, "application/json", catalog + b', "@id": "c", "dataset": [{"@id": 5}]}'),
    ]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OddPeer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{server.server_address[1]}/dsp/2025-1"
    papi: Api = world["papi"]
    outcomes: list[tuple[int, int, int]] = []
    try:
        for i, answer in enumerate(answers):
            server.answer = answer  # type: ignore[attr-defined]
            fetched = papi.http.post(
                "/management/catalog/request", json={"counterpartyAddress": address}
            )
            harvested = papi.http.post("/management/harvest", json={"targets": [address]})
            outcomes.append((i, fetched.status_code, harvested.status_code))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert [o for o in outcomes if o[1] >= 500 and o[1] != 502 or o[2] >= 500] == []
    assert [o[1] for o in outcomes[:9]] == [502] * 9  # all but the last are no catalog at all
