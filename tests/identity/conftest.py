"""Identity test fixtures: an injected clock, an in-memory replay guard, and a real HTTP
server on loopback that publishes DID documents (the lead's ``serve`` will replace it)."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.identity.did import build_did_document
from connector.identity.keys import ConnectorKeys
from connector.identity.resolver import DidResolver
from connector.identity.signing import KeyKind, PrivateKey, generate_key, sign_jws

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

_SERVER = r"""
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class MemoryReplayGuard:
    """In-memory ``ReplayGuard`` for tests; the connector's is backed by the store."""

    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}

    async def remember(self, jti: str, expires_at: datetime) -> bool:
        if jti in self.seen:
            return False
        self.seen[jti] = expires_at
        return True


def new_keys(signing: KeyKind = "Ed25519") -> ConnectorKeys:
    return ConnectorKeys(signing=generate_key(signing), key_agreement=generate_key("X25519"))


def sign_claims(claims: dict[str, Any], key: PrivateKey, kid: str, typ: str = "JWT") -> str:
    return sign_jws(json.dumps(claims).encode(), key, kid, extra_header={"typ": typ})


class DidServer:
    """A plain-HTTP server on 127.0.0.1 serving files from ``root``."""

    def __init__(self, root: Path, port: int, log: Path) -> None:
        self.root, self.port, self.log = root, port, log
        self.netloc = f"127.0.0.1:{port}"
        self.host_did = f"did:web:127.0.0.1%3A{port}"

    def publish(self, keys: ConnectorKeys, *, at_root: bool = False) -> str:
        """Publish a DID document for ``keys``; a fresh path DID unless ``at_root``."""
        if at_root:
            did, path = self.host_did, self.root / ".well-known" / "did.json"
        else:
            segment = f"t-{uuid.uuid4().hex[:12]}"
            did, path = f"{self.host_did}:{segment}", self.root / segment / "did.json"
        self.write(path, build_did_document(did, keys, f"http://{self.netloc}/dsp/2025-1"))
        return did

    def write(self, path: Path, document: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document))
        tmp.replace(path)

    def requests_for(self, url_path: str) -> int:
        return sum(f'"GET {url_path} ' in line for line in self.log.read_text().splitlines())


@pytest.fixture(scope="session")
def did_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DidServer]:
    root = tmp_path_factory.mktemp("did-root")
    log = root.parent / "did-server.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(root)],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 15
            while not selector.select(timeout=0.1):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"DID test server did not start: {log.read_text()}")
        yield DidServer(root, int(proc.stdout.readline()), log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture
def resolver(http: httpx.AsyncClient, clock: FakeClock, did_server: DidServer) -> DidResolver:
    return DidResolver(http, clock, insecure_hosts=[did_server.netloc], cache_seconds=300)


def is_root() -> bool:
    return os.geteuid() == 0
