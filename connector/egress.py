"""Where the connector connects on a peer's word: never to an internal address.

A peer names the hosts we call: the host of its did:web (we fetch its DID document before its
token's signature can be checked, so anyone can name any host), its ``callbackAddress``, the
``refreshEndpoint`` of a DataAddress. Checking the spelling of a host is not enough (``127.1``,
``2130706433``, ``0x7f000001``, ``localhost.`` and DNS names pointing at internal addresses are
all loopback), so the check is made on the address actually connected to, after resolution:

- it must be a global address, or in ``PHEMS_PEER_NETWORKS`` (a data space inside a private
  network), or be what a ``host:port`` of ``PHEMS_INSECURE_DID_HOSTS`` resolves to (loopback
  tests, the demo);
- ``GuardedBackend`` does so for httpx (the DID resolver, the data plane token refresh): it
  resolves the name itself and connects to a checked address (TLS still verifies the name);
- ``socket_factory`` does so for aiohttp (the outbox sender): aiohttp hands it each address it
  is about to connect to.

A refused connection raises ``EgressRefused`` (an ``OSError``, so clients report it as the
connection error it is) and is logged as one line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(OSError):
    """A connection to an address peers may not make us reach."""


class EgressPolicy:
    # How long what an insecure host:port resolves to is remembered.
    insecure_ttl_seconds = 60.0

    def __init__(self, *, insecure_hosts: Iterable[str] = (), networks: Iterable[str] = ()):
        self.insecure_hosts = tuple(insecure_hosts)
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )
        self._insecure: set[tuple[str, int]] = set()
        self._insecure_at = -float("inf")

    def _insecure_addresses(self) -> set[tuple[str, int]]:
        """(address, port) of every insecure host:port (names resolved, remembered briefly)."""
        if time.monotonic() - self._insecure_at < self.insecure_ttl_seconds:
            return self._insecure
        found: set[tuple[str, int]] = set()
        for item in self.insecure_hosts:
            host, _, port = item.rpartition(":")
            host = host.strip("[]")
            if not port.isdigit():
                continue
            try:
                infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            except OSError:
                continue
            found |= {(_canonical(str(info[4][0])), int(port)) for info in infos}
        self._insecure, self._insecure_at = found, time.monotonic()
        return found

    def allows(self, address: str, port: int) -> bool:
        ip = ipaddress.ip_address(_canonical(address))
        if ip.is_global and not ip.is_multicast:
            return True
        if any(ip in network for network in self.networks):
            return True
        return (str(ip), port) in self._insecure_addresses()

    def check(self, address: str, port: int, host: str) -> None:
        if not self.allows(address, port):
            log.warning(
                "refused to connect to %s:%d (%s): not a public address", host, port, address
            )
            raise EgressRefused(f"{host} resolves to {address}, an internal address")

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` we may connect to (``EgressRefused`` if none)."""
        name = host.strip("[]").rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):  # always loopback (RFC 6761)
            addresses = ["127.0.0.1", "::1"]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
            addresses = list(dict.fromkeys(_canonical(str(info[4][0])) for info in infos))
        allowed = [a for a in addresses if self.allows(a, port)]
        if not allowed:
            self.check(addresses[0], port, host)  # logs and raises
        return allowed

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """For ``aiohttp.TCPConnector(socket_factory=...)``: the socket for one resolved
        address, or ``EgressRefused``."""
        family, type_, proto, _, sockaddr = addr_info
        self.check(str(sockaddr[0]), int(sockaddr[1]), str(sockaddr[0]))
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses ``policy`` allows."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.resolve(host, port)
        except EgressRefused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets for peers")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(policy: EgressPolicy, *, timeout: float) -> httpx.AsyncClient:
    """An httpx client for URLs peers give us: no redirects, checked addresses."""
    transport = httpx.AsyncHTTPTransport()
    # httpx has no argument for the network backend: the pool it builds is replaced by the
    # same pool with ours (httpcore's documented extension point).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(policy)
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
