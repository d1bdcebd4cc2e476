"""A peer's answer is read up to a limit, never buffered whole (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from connector.clock import SystemClock
from connector.errors import UpstreamError
from connector.exchange import sender as sender_module
from connector.exchange.ports import OutboxItem
from connector.exchange.sender import OutboxSender, ResponseTooLarge
from connector.identity.tokens import TokenIssuer
from connector.peer_http import capped_request
from tests.conftest import free_port
from tests.identity.conftest import new_keys


@pytest.fixture
async def peer() -> AsyncIterator[str]:
    """A server answering every request with ``?size=N`` bytes, streamed in 64 KiB chunks."""

    async def answer(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "10"))
        response = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            part = chunk[: size - sent]
            await response.write(part)
            sent += len(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_capped_request_returns_a_small_answer(peer: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await capped_request(http, "GET", f"{peer}/x?size=1000", what="test", limit=1000)
    assert answer.status == 201 and answer.body == b"x" * 1000


async def test_capped_request_refuses_a_larger_answer(peer: str) -> None:
    url = f"{peer}/x?size=300000"
    async with httpx.AsyncClient() as http:
        with pytest.raises(UpstreamError, match=r"test: answer larger than 100000 bytes") as info:
            await capped_request(http, "GET", url, what="test", limit=100000)
    assert url in info.value.detail


async def test_capped_request_names_an_unreachable_peer() -> None:
    url = f"http://127.0.0.1:{free_port()}/catalog/request"
    async with httpx.AsyncClient() as http:
        with pytest.raises(UpstreamError, match=r"catalog request failed: .*ConnectError") as info:
            await capped_request(http, "POST", url, what="catalog request")
    assert url in info.value.detail


def _sender() -> OutboxSender:
    keys = new_keys()
    did = "did:web:127.0.0.1%3A1"
    return OutboxSender(
        stores=None,  # type: ignore[arg-type]  # _post touches neither stores nor audit
        tokens=TokenIssuer(did, keys, 60, [], SystemClock()),
        timeout_seconds=5,
        clock=SystemClock(),
        audit=None,  # type: ignore[arg-type]
        poll_seconds=1,
    )


def _item(url: str) -> OutboxItem:
    return OutboxItem(
        id=1,
        process_kind="negotiation",
        process_id="urn:uuid:1",
        message_type="ContractRequestMessage:initial",
        url=url,
        audience="did:web:peer",
        body={"@type": "ContractRequestMessage"},
        attempts=1,
    )


async def test_outbox_sender_reads_an_answer(peer: str) -> None:
    sender = _sender()
    try:
        answer = await sender._post(f"{peer}/dsp?size=300000", _item(peer))
    finally:
        await sender.aclose()
    assert (answer.status, answer.body) == (201, b"x" * 300000)  # many chunks, all read


async def test_outbox_sender_refuses_an_oversized_answer(
    peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_module, "MAX_RESPONSE_BYTES", 100000)
    sender = _sender()
    try:
        with pytest.raises(ResponseTooLarge, match="larger than 100000 bytes"):
            await sender._post(f"{peer}/dsp?size=5000000", _item(peer))
    finally:
        await sender.aclose()
    # Treated like a transport error by the delivery code (retried, then failed).
    assert issubclass(ResponseTooLarge, aiohttp.ClientError)
