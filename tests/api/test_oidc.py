"""Management API with OIDC bearer tokens: an issuer on loopback publishes its discovery
document and JWKS (a real HTTP server process); the app checks signature, issuer, audience and
expiry, and the API key keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from connector.api.app import create_app
from connector.settings import load_settings
from tests.conftest import free_port

SERVER = """
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
"""


class Issuer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": "phems-connector",
            "sub": "dpo@hospital",
            "iat": now,
            "exp": now + 300,
        } | claims
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issuer]:
    root = tmp_path_factory.mktemp("oidc")
    port = free_port()
    issuer = Issuer(f"http://127.0.0.1:{port}")
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(issuer.key.public_key()))
    (root / ".well-known").mkdir()
    (root / ".well-known" / "openid-configuration").write_text(
        json.dumps({"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks.json"})
    )
    (root / "jwks.json").write_text(json.dumps({"keys": [public | {"kid": "k1", "use": "sig"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(root), str(port)], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{issuer.url}/jwks.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def client(tmp_path: Path, issuer: Issuer) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        data_dir=tmp_path, management_oidc_issuer=issuer.url, management_api_key="secret-key"
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def _get(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/management/datasets", headers={"Authorization": f"Bearer {token}"})


async def test_valid_oidc_token_and_api_key_both_work(
    client: httpx.AsyncClient, issuer: Issuer
) -> None:
    assert (await _get(client, issuer.token())).status_code == 200
    r = await client.get("/management/datasets", headers={"X-Api-Key": "secret-key"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"iss": "http://127.0.0.1:1/other"}, "issuer"),
    ],
)
async def test_bad_oidc_tokens_refused(
    client: httpx.AsyncClient, issuer: Issuer, claims: dict[str, Any], reason: str
) -> None:
    r = await _get(client, issuer.token(**claims))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert reason in r.json()["detail"].lower()


async def test_token_signed_by_another_key_refused(
    client: httpx.AsyncClient, issuer: Issuer
) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = await _get(client, issuer.token(key=forger))
    assert r.status_code == 401 and "signature" in r.json()["detail"].lower()


async def test_garbage_and_wrong_key_refused(client: httpx.AsyncClient) -> None:
    assert (await _get(client, "not.a.jwt")).status_code == 401
    assert (await _get(client, "wrong-api-key")).status_code == 401
