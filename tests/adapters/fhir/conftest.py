"""Fixtures: one sekmet FHIR server per session, loaded with the shared 10-patient data, and
the two ``FhirSource`` implementations pointed at the same data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from adapters.fhir.auth import BearerAuth
from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from connector.ports import FhirSource
from tests.adapters.fhir.data import DATA_DIR
from tests.adapters.fhir.fake import FakeServer, serving
from tests.adapters.fhir.sekmet import SekmetServer, ensure_sekmet
from tests.conftest import free_port

TOKEN = "phems-static-test-token"
BASIC_USER, BASIC_PASSWORD = "phems", "basic-pw-for-tests"
RS_CLIENT, ES_CLIENT = "phems-rs384", "phems-es384"


@dataclass(frozen=True)
class SmartKeys:
    rsa_pem: Path  # our private key, PEM (RS384)
    es_jwk: Path  # our private key, JWK (ES384)
    stranger_pem: Path  # a key sekmet has never seen
    rsa_public: Path
    es_public: Path


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="session")
def smart_keys(tmp_path_factory: pytest.TempPathFactory) -> SmartKeys:
    folder = tmp_path_factory.mktemp("smart-keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    es_key = ec.generate_private_key(ec.SECP384R1())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = SmartKeys(
        folder / "rs384.pem",
        folder / "es384.jwk.json",
        folder / "stranger.pem",
        folder / "rs384.pub.pem",
        folder / "es384.pub.pem",
    )
    keys.rsa_pem.write_bytes(_private_pem(rsa_key))
    jwk = json.loads(ECAlgorithm.to_jwk(es_key))
    keys.es_jwk.write_text(json.dumps({**jwk, "kid": "es384-test"}))
    keys.stranger_pem.write_bytes(_private_pem(stranger))
    keys.rsa_public.write_bytes(_public_pem(rsa_key))
    keys.es_public.write_bytes(_public_pem(es_key))
    return keys


def server_auth(keys: SmartKeys) -> dict[str, Any]:
    return {
        "types": ["basic", "bearer", "smart"],
        "users": {BASIC_USER: BASIC_PASSWORD},
        "tokens": [TOKEN],
        "smart_clients": [
            {
                "client_id": RS_CLIENT,
                "public_key_path": str(keys.rsa_public),
                "scopes": "system/*.read",
            },
            {
                "client_id": ES_CLIENT,
                "public_key_path": str(keys.es_public),
                "scopes": "system/*.read",
            },
        ],
    }


@pytest.fixture(scope="session")
def sekmet_exe() -> Path:
    return ensure_sekmet()


@pytest.fixture(scope="session")
def sekmet(
    sekmet_exe: Path, smart_keys: SmartKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SekmetServer]:
    """sekmet with basic, bearer and SMART auth, loaded with the shared fixture data."""
    server = SekmetServer(
        sekmet_exe,
        tmp_path_factory.mktemp("sekmet"),
        free_port(),
        server_auth=server_auth(smart_keys),
    )
    try:
        server.start()
        server.load_ndjson(DATA_DIR, token=TOKEN)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def rest_source(sekmet: SekmetServer) -> AsyncIterator[FhirRestSource]:
    source = FhirRestSource(sekmet.base_url, auth=BearerAuth(TOKEN))
    try:
        yield source
    finally:
        await source.aclose()


@pytest.fixture
async def file_source() -> AsyncIterator[NdjsonFileSource]:
    source = NdjsonFileSource(DATA_DIR)
    try:
        yield source
    finally:
        await source.aclose()


@pytest.fixture(params=["files", "rest"])
async def source(request: pytest.FixtureRequest) -> AsyncIterator[FhirSource]:
    """Each implementation of the port, over the same data (the contract suite runs on both)."""
    impl: FhirSource
    if request.param == "files":
        impl = NdjsonFileSource(DATA_DIR)
    else:
        server: SekmetServer = request.getfixturevalue("sekmet")
        impl = FhirRestSource(server.base_url, auth=BearerAuth(TOKEN))
    try:
        yield impl
    finally:
        await impl.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    """A fake FHIR server on loopback; tests set its routes (``tests/adapters/fhir/fake.py``)."""
    async with serving() as server:
        yield server
