"""OIDC key refreshes are rate-limited (issue 18, finding 4): tokens with made-up ``kid`` values
must not make the connector fetch the issuer's documents on every request, and a call with a
known key never waits for a refresh. The issuer is an httpx ``MockTransport`` that counts
what it is asked; time is an injected monotonic clock."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.errors import AuthenticationError
from connector.identity.oidc import OidcVerifier

ISSUER = "https://login.hospital.example/realms/phems"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeIssuer:
    def __init__(self) -> None:
        self.fetches = 0
        self.kids = ["k1"]
        self.slow: asyncio.Event | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"})
        if self.slow is not None:
            await self.slow.wait()
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
        return httpx.Response(200, json={"keys": [public | {"kid": k} for k in self.kids]})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def token(kid: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "phems-connector", "sub": "dpo", "iat": now, "exp": now + 60}
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def setup() -> Any:
    issuer, clock = FakeIssuer(), Clock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle))
    verifier = OidcVerifier(
        http, issuer=ISSUER, audience="phems-connector", min_refresh_seconds=30, monotonic=clock
    )
    return issuer, clock, verifier


async def test_unknown_kids_cost_one_refresh_per_interval(setup: Any) -> None:
    issuer, clock, verifier = setup
    assert (await verifier.verify(token("k1")))["sub"] == "dpo"
    assert issuer.fetches == 2  # discovery and JWKS
    for i in range(200):
        with pytest.raises(AuthenticationError, match="unknown OIDC key"):
            await verifier.verify(token(f"forged-{i}"))
    assert issuer.fetches == 2  # the keys were fetched just now: no refresh for any of them
    clock.t += 31
    with pytest.raises(AuthenticationError):
        await verifier.verify(token("forged-again"))
    assert issuer.fetches == 4  # one refresh an interval, however many unknown kids
    for i in range(50):
        with pytest.raises(AuthenticationError):
            await verifier.verify(token(f"forged-{i}"))
    assert issuer.fetches == 4
    clock.t += 31
    issuer.kids.append("k2")  # the issuer rotates a key in
    assert (await verifier.verify(token("k2")))["sub"] == "dpo"
    assert issuer.fetches == 6


async def test_concurrent_unknown_kids_share_one_refresh(setup: Any) -> None:
    issuer, _, verifier = setup
    results = await asyncio.gather(
        *(verifier.verify(token(f"forged-{i}")) for i in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert issuer.fetches == 2


async def test_a_known_key_does_not_wait_for_a_refresh(setup: Any) -> None:
    issuer, clock, verifier = setup
    await verifier.verify(token("k1"))
    clock.t += 31
    issuer.slow = asyncio.Event()
    refresh = asyncio.create_task(verifier.verify(token("forged")))
    while issuer.fetches < 4:  # the refresh is waiting for the JWKS
        await asyncio.sleep(0)
    claims = await asyncio.wait_for(verifier.verify(token("k1")), 1)
    assert claims["sub"] == "dpo"
    issuer.slow.set()
    with pytest.raises(AuthenticationError):
        await refresh


async def test_keys_expire_after_the_cache_time(setup: Any) -> None:
    issuer, clock, verifier = setup
    await verifier.verify(token("k1"))
    clock.t += 301
    await verifier.verify(token("k1"))
    assert issuer.fetches == 4
