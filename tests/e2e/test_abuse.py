"""Abuse of a real connector process on loopback: bodies and headers too large, clients too
slow or too many (issue 18, findings 1 and 2). Every loop is bounded in count and time.

The provider runs with small limits so the tests are quick: bodies of 64 KiB (management),
8 KiB (DSP), a 1 s header and body read timeout and 40 connections.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.conftest import RESEARCH_OFFER, Api, Authority, dataset, launch, wait_for
from tests.e2e.test_dsp_bad_input import Peer, request_body
from tests.processes import ConnectorProcess, stop

LIMITS = {
    "PHEMS_MANAGEMENT_MAX_BODY_BYTES": str(64 << 10),
    "PHEMS_DSP_MAX_BODY_BYTES": str(8 << 10),
    "PHEMS_HEADER_READ_TIMEOUT_SECONDS": "1",
    "PHEMS_BODY_READ_TIMEOUT_SECONDS": "1",
    "PHEMS_MAX_CONNECTIONS": "40",
    "PHEMS_DID_RESOLUTIONS_PER_MINUTE": "30",
}
HUGE = 50_000_000  # what the tester sent: 50 MB


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, authority: Authority) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("abuse")
    pp, pc = free_port(), free_port()
    procs: list[ConnectorProcess] = []
    try:
        provider = launch(tmp, "provider", pp, [pp, pc], authority, env=LIMITS)
        procs.append(provider)
        credentials = {"m.jwt": authority.credential(f"did:web:127.0.0.1%3A{pc}")}
        consumer = launch(tmp, "consumer", pc, [pp, pc], authority, credentials=credentials)
        procs.append(consumer)
        papi = Api(provider)
        papi.post("/datasets", dataset(), expect=201)
        peer = Peer(consumer, provider)
        yield provider, papi, peer
        papi.http.close()
        peer.http.close()
    finally:
        for p in procs:
            stop(p.proc)


def connect(c: ConnectorProcess) -> socket.socket:
    host, port = c.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def answer(sock: socket.socket, timeout: float = 5) -> bytes:
    """What the server sends until it closes the connection or ``timeout`` passes."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status(data: bytes) -> int:
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ")[1])


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


# -- finding 1: body and header sizes ---------------------------------------------------------


def test_unauthenticated_body_is_refused_before_it_is_read(world: Any) -> None:
    provider, _, _ = world
    with connect(provider) as sock:
        sock.sendall(
            head(
                "POST",
                "/management/datasets",
                "Content-Type: application/json",
                f"Content-Length: {HUGE}",
            )
            + b"[1,"
        )
        data = answer(sock)
    assert status(data) == 401  # answered without the 50 MB: the body was never awaited
    assert b"www-authenticate" in data.lower()


def test_authenticated_body_over_the_limit_is_413_before_it_is_read(world: Any) -> None:
    provider, papi, _ = world
    with connect(provider) as sock:
        sock.sendall(
            head(
                "POST",
                "/management/datasets",
                f"X-Api-Key: {provider.api_key}",
                "Content-Type: application/json",
                f"Content-Length: {HUGE}",
            )
            + b"[1,"
        )
        data = answer(sock)
    assert status(data) == 413
    assert b"connection: close" in data.lower()
    assert b"larger than 65536 bytes" in data
    assert len(papi.get("/datasets")) == 1


def test_chunked_body_over_the_limit_is_cut_short(world: Any) -> None:
    provider, _, _ = world
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(200):  # 200 x 16 KiB = 3.2 MB offered; the limit is 64 KiB
            sent += 16384
            yield b" " * 16384

    with httpx.Client(timeout=10) as client:
        try:
            r = client.post(
                provider.url + "/management/datasets",
                content=chunks(),
                headers={"X-Api-Key": provider.api_key, "Content-Type": "application/json"},
            )
            assert r.status_code == 413, r.text
        except httpx.WriteError:
            pass  # the server answered and closed while we were still sending
    assert sent < 200 * 16384


def test_dsp_member_cannot_send_a_huge_message(world: Any) -> None:
    provider, _, peer = world
    with connect(provider) as sock:
        sock.sendall(
            head(
                "POST",
                "/dsp/2025-1/negotiations/request",
                f"Authorization: Bearer {peer.token()}",
                "Content-Type: application/json",
                f"Content-Length: {HUGE}",
            )
            + b"{"
        )
        data = answer(sock)
    assert status(data) == 413
    assert b"ContractNegotiationError" in data
    # A message within the limit still works.
    assert peer.post("/negotiations/request", request_body(peer)).status_code == 201


def test_oversized_headers_are_431(world: Any) -> None:
    provider, _, _ = world
    with connect(provider) as sock:
        sock.sendall(head("GET", "/healthz", "X-Padding: " + "a" * 40_000))
        data = answer(sock)
    assert status(data) == 431
    assert httpx.get(provider.url + "/healthz", headers={"X-Fine": "a" * 8000}).status_code == 200


# -- finding 2: slow clients --------------------------------------------------------------------


def test_slow_and_surplus_connections_are_dropped(world: Any) -> None:
    provider, _, _ = world
    socks = [connect(provider) for _ in range(60)]  # 20 over the cap of 40
    try:
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        deadline = time.monotonic() + 10
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.settimeout(0.05)
                try:
                    if s.recv(1024) == b"":
                        continue
                except TimeoutError:
                    still.append(s)
                    continue
                except ConnectionResetError:
                    continue
            open_ = still
        assert not open_, f"{len(open_)} slow connections still held after 10 s"
    finally:
        for s in socks:
            s.close()
    assert httpx.get(provider.url + "/healthz", timeout=5).status_code == 200
    log = provider.log()
    assert "over the cap of 40 open connections" in log
    assert "no complete request headers within 1 s" in log


def test_slow_body_is_408_in_one_log_line(world: Any) -> None:
    provider, _, _ = world
    with connect(provider) as sock:
        sock.sendall(
            head(
                "POST",
                "/catalog/signin",
                "Content-Type: application/x-www-form-urlencoded",
                "Content-Length: 100",
            )
            + b"api_key=ab"
        )
        data = answer(sock)
    assert status(data) == 408
    assert b"connection: close" in data.lower()
    wait_for(provider.log, lambda text: "request body too slow" in text, timeout=5)
    assert "Traceback" not in provider.log()


def test_aborted_upload_is_one_log_line(world: Any) -> None:
    provider, _, peer = world
    dsp = "/dsp/2025-1/negotiations/request"
    for path, auth, kind in (
        ("/catalog/signin", "X-Nothing: 1", "application/x-www-form-urlencoded"),
        (dsp, f"Authorization: Bearer {peer.token()}", "application/json"),
    ):
        with connect(provider) as sock:
            sock.sendall(
                head("POST", path, auth, f"Content-Type: {kind}", "Content-Length: 500") + b"{"
            )
        wait_for(provider.log, lambda text, p=path: f"POST {p} went away" in text, timeout=5)
    assert "Traceback" not in provider.log()


# -- finding 3: datasets offered only to named recipients ---------------------------------------

PARTNER = "did:web:partner.example"


def _recipient_offer(id_: str) -> dict[str, Any]:
    return {
        "@id": id_,
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "recipient", "operator": "eq", "rightOperand": PARTNER}
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def restricted(world: Any) -> Any:
    provider, papi, peer = world
    papi.post("/datasets", dataset("for-one", [_recipient_offer("offer-partner")]), expect=201)
    mixed = [RESEARCH_OFFER, _recipient_offer("offer-partner-too")]
    papi.post("/datasets", dataset("mixed", mixed), expect=201)
    return provider, peer


@pytest.mark.parametrize("accept", ["text/turtle", "application/ld+json", "text/html"])
def test_public_pages_leave_out_what_is_offered_to_named_recipients(
    restricted: Any, accept: str
) -> None:
    provider, _ = restricted
    with httpx.Client(base_url=provider.url, headers={"Accept": accept}, timeout=10) as client:
        listing = client.get("/catalog")
        assert listing.status_code == 200
        assert "paediatric-asthma" in listing.text and "mixed" in listing.text
        assert "for-one" not in listing.text
        assert "partner.example" not in listing.text
        hidden, missing = (
            client.get("/catalog/datasets/for-one"),
            client.get("/catalog/datasets/none"),
        )
        assert hidden.status_code == missing.status_code == 404
        page = client.get("/catalog/datasets/mixed")
        assert page.status_code == 200
        assert "offer-research" in page.text or accept == "text/html"
        assert "partner" not in page.text


def test_dsp_answers_hidden_and_missing_alike(restricted: Any) -> None:
    _, peer = restricted

    def refusal(dataset_id: str, offer_id: str) -> str:
        offer = {**RESEARCH_OFFER, "@id": offer_id, "target": dataset_id}
        r = peer.post("/negotiations/request", request_body(peer, offer=offer))
        assert r.status_code == 400, r.text
        return " ".join(r.json()["reason"]).replace(dataset_id, "X").replace(offer_id, "Y")

    assert refusal("for-one", "offer-partner") == refusal("no-such", "offer-partner")
    assert refusal("mixed", "offer-partner-too") == refusal("mixed", "no-such-offer")
    assert "partner" not in refusal("for-one", "offer-partner")
    r = peer.get("/catalog/datasets/for-one")
    assert (r.status_code, r.json()["reason"]) == (404, ["no dataset for-one"])


def test_harvested_offers_made_to_us_are_shown_only_to_the_operator(
    world: Any, restricted: Any
) -> None:
    provider, papi, peer = world
    consumer = peer.me
    only_us = _recipient_offer("offer-for-us")
    only_us["permission"][0]["constraint"][0]["rightOperand"] = consumer.did
    papi.post("/datasets", dataset("for-us", [only_us]), expect=201)
    capi = Api(consumer)
    try:
        run = capi.post("/harvest", {"targets": [provider.url + "/dsp/2025-1"]}, expect=200)
        assert run["targets"][0]["state"] == "ok", run
        html = {"Accept": "text/html"}
        with httpx.Client(base_url=consumer.url, headers=html, timeout=10) as anyone:
            assert "for-us" not in anyone.get("/catalog").text
            page = anyone.get("/catalog/datasets/for-us", params={"provider": provider.did})
            assert page.status_code == 404
            signin = {"api_key": consumer.api_key, "next": "/catalog"}
            assert anyone.post("/catalog/signin", data=signin).status_code == 303
            assert "for-us" in anyone.get("/catalog").text  # the operator sees it
    finally:
        capi.http.close()


# -- finding 7: did:web resolution before the signature check -----------------------------------


def _forged(provider: ConnectorProcess, iss: str) -> str:
    """A token naming ``iss``: the provider must resolve its DID before it can check the
    signature (which is garbage)."""
    now = int(time.time())
    header = {"alg": "EdDSA", "kid": f"{iss}#key-1", "typ": "JWT"}
    claims = {"iss": iss, "sub": iss, "aud": provider.did, "iat": now, "exp": now + 60}
    claims["jti"] = f"j-{time.monotonic_ns()}"

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2ln"


def test_did_web_resolution_cannot_reach_internal_addresses(world: Any) -> None:
    provider, _, _ = world
    with socket.socket() as listener:  # an internal service that must never hear from us
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for host in (f"127.0.0.1%3A{port}", f"localhost%3A{port}", f"2130706433%3A{port}"):
            iss = f"did:web:{host}:management:datasets"
            r = httpx.post(
                provider.url + "/dsp/2025-1/catalog/request",
                json={},
                headers={"Authorization": f"Bearer {_forged(provider, iss)}"},
            )
            assert r.status_code == 401, r.text
            assert "internal address" in " ".join(r.json()["reason"])
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    log = provider.log()
    assert f"refused to connect to 127.0.0.1:{port}" in log
    assert '"level": "ERROR"' not in log and "Traceback" not in log


def test_unknown_dids_from_one_client_are_rate_limited(world: Any) -> None:
    provider, _, _ = world
    answers = []
    for i in range(35):  # the limit is 30 new DIDs a minute for one client
        iss = f"did:web:127.0.0.1%3A9:made-up-{i}-{time.monotonic_ns()}"
        r = httpx.post(
            provider.url + "/dsp/2025-1/catalog/request",
            json={},
            headers={"Authorization": f"Bearer {_forged(provider, iss)}"},
        )
        answers.append(" ".join(r.json()["reason"]))
    limited = [a for a in answers if "too many unknown DIDs" in a]
    assert len(limited) >= 5
    assert provider.log().count("more than 30 new DIDs a minute on 127.0.0.1%3A9") == 1
