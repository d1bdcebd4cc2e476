"""What peers may make us connect to (issue 18, findings 7 and 8): the address connected to is
checked, however the host is spelt; both HTTP clients enforce it. Only loopback is contacted."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from connector.egress import EgressPolicy, EgressRefused, guarded_client
from tests.conftest import free_port

LOOPBACK_SPELLINGS = ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost."]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused(host: str) -> None:
    with pytest.raises(EgressRefused):
        await EgressPolicy().resolve(host, 443)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fd00::1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("192.0.2.1", False),  # documentation range
        ("93.184.216.34", True),  # a public address (never contacted here)
        ("2001:4860:4860::8888", True),
    ],
)
def test_only_public_addresses_by_default(address: str, allowed: bool) -> None:
    assert EgressPolicy().allows(address, 443) is allowed


def test_peer_networks_and_insecure_hosts_are_allowed() -> None:
    policy = EgressPolicy(networks=["10.20.0.0/16"], insecure_hosts=["127.0.0.1:8123"])
    assert policy.allows("10.20.5.6", 443) and not policy.allows("10.21.0.1", 443)
    assert policy.allows("127.0.0.1", 8123) and not policy.allows("127.0.0.1", 8124)


async def test_an_insecure_host_is_matched_by_address_not_spelling() -> None:
    policy = EgressPolicy(insecure_hosts=["127.0.0.1:8123"])
    assert await policy.resolve("127.1", 8123) == ["127.0.0.1"]


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[str]]]:
    seen: list[str] = []

    async def hello(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433"])
async def test_httpx_client_connects_only_where_allowed(
    server: tuple[int, list[str]], host: str
) -> None:
    port, seen = server
    async with guarded_client(EgressPolicy(), timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match="internal address"):
            await client.get(f"http://{host}:{port}/did.json")
    assert seen == []
    allowed = EgressPolicy(insecure_hosts=[f"127.0.0.1:{port}"])
    async with guarded_client(allowed, timeout=5) as client:
        assert (await client.get(f"http://{host}:{port}/did.json")).status_code == 200
    assert seen == ["/did.json"]


async def test_aiohttp_sender_connects_only_where_allowed(server: tuple[int, list[str]]) -> None:
    port, seen = server
    for policy, ok in (
        (EgressPolicy(), False),
        (EgressPolicy(insecure_hosts=[f"127.0.0.1:{port}"]), True),
    ):
        connector = aiohttp.TCPConnector(socket_factory=policy.socket_factory)
        async with aiohttp.ClientSession(connector=connector) as session:
            if ok:
                async with session.post(f"http://127.0.0.1:{port}/cb", data=b"{}") as r:
                    assert r.status == 200
            else:
                with pytest.raises(aiohttp.ClientConnectorError):
                    await session.post(f"http://127.0.0.1:{port}/cb", data=b"{}")
    assert seen == ["/cb"]


def test_refusal_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(EgressRefused):
        EgressPolicy().socket_factory(
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))
        )
    assert [r.getMessage() for r in caplog.records] == [
        "refused to connect to 127.0.0.1:80 (127.0.0.1): not a public address"
    ]
