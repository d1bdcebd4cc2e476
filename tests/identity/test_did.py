"""did:web mapping, did:key vectors and key lookup in DID documents (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connector.errors import AuthenticationError, ConfigurationError
from connector.identity.did import (
    base58_decode,
    base58_encode,
    build_did_document,
    did_from_url,
    did_key_document,
    did_key_from_public_jwk,
    did_key_kid,
    did_to_url,
    find_key,
    public_jwk_from_did_key,
)
from connector.identity.signing import b64url_encode, generate_key
from tests.identity.conftest import new_keys

# w3c-ccg did-method-key test vectors (ed25519-x25519.json): the key of the all-zero seed.
SPEC_DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
SPEC_BASE58 = "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS"
SPEC_X = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik"
SPEC_OTHER = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf"


@pytest.mark.parametrize(
    ("url", "did"),
    [
        ("http://127.0.0.1:8080", "did:web:127.0.0.1%3A8080"),
        ("http://127.0.0.1:8080/", "did:web:127.0.0.1%3A8080"),
        ("https://hospital.example", "did:web:hospital.example"),
        ("https://Hospital.Example/a/b", "did:web:hospital.example:a:b"),
        ("https://w3c-ccg.github.io/user/alice", "did:web:w3c-ccg.github.io:user:alice"),
    ],
)
def test_did_from_url(url: str, did: str) -> None:
    assert did_from_url(url) == did


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "https://u:p@host", "https://h/?q=1"])
def test_did_from_bad_url_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError, match="^PHEMS_PUBLIC_URL: "):
        did_from_url(url)


def test_did_to_url_https_by_default_http_only_when_listed() -> None:
    did = "did:web:127.0.0.1%3A8080"
    assert did_to_url(did) == "https://127.0.0.1:8080/.well-known/did.json"
    assert did_to_url(did, ["127.0.0.1:8080"]) == "http://127.0.0.1:8080/.well-known/did.json"
    assert did_to_url(did, ["127.0.0.1:9090", "127.0.0.1"]) == (
        "https://127.0.0.1:8080/.well-known/did.json"
    )
    assert did_to_url("did:web:w3c-ccg.github.io:user:alice") == (
        "https://w3c-ccg.github.io/user/alice/did.json"
    )


@pytest.mark.parametrize(
    "did",
    ["did:key:z6Mk", "did:web:", "did:web:a::b", "did:web:evil.example%2Fpath", "did:web:a#key-1"],
)
def test_did_to_url_refuses_malformed(did: str) -> None:
    with pytest.raises(AuthenticationError, match="did:web DID"):
        did_to_url(did)


def test_did_web_round_trip() -> None:
    for url in ("http://127.0.0.1:8080", "https://h.example/x/y"):
        assert did_to_url(did_from_url(url), ["127.0.0.1:8080"]).startswith(url)


def test_did_document_shape() -> None:
    keys = new_keys()
    did = "did:web:127.0.0.1%3A8080"
    doc = build_did_document(did, keys, "http://127.0.0.1:8080/dsp/2025-1")
    assert doc["@context"] == [
        "https://www.w3.org/ns/did/v1",
        "https://w3id.org/security/suites/jws-2020/v1",
    ]
    assert doc["id"] == did
    methods = {m["id"]: m for m in doc["verificationMethod"]}
    assert methods[f"{did}#key-1"]["type"] == "JsonWebKey2020"
    assert methods[f"{did}#key-1"]["publicKeyJwk"] == keys.signing.public_jwk()
    assert methods[f"{did}#key-agreement-1"]["publicKeyJwk"]["crv"] == "X25519"
    assert all(m["controller"] == did and "d" not in m["publicKeyJwk"] for m in methods.values())
    assert doc["authentication"] == doc["assertionMethod"] == [f"{did}#key-1"]
    assert doc["keyAgreement"] == [f"{did}#key-agreement-1"]
    assert doc["service"] == [
        {
            "id": f"{did}#dsp",
            "type": "DataService",
            "serviceEndpoint": "http://127.0.0.1:8080/dsp/2025-1",
        }
    ]


def test_base58_known_values() -> None:
    # Bitcoin base58 alphabet: leading zero bytes become "1".
    assert base58_encode(b"") == ""
    assert base58_encode(b"\0\0\x01") == "112"
    assert base58_encode(b"hello world") == "StV1DL6CwTryKyV"
    assert base58_decode("StV1DL6CwTryKyV") == b"hello world"
    assert base58_decode("112") == b"\0\0\x01"
    with pytest.raises(ValueError, match="invalid base58"):
        base58_decode("0OIl")


def test_did_key_spec_vector_from_zero_seed() -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes(32))
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert base58_encode(raw) == SPEC_BASE58
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    assert jwk["x"] == SPEC_X
    assert did_key_from_public_jwk(jwk) == SPEC_DID
    assert public_jwk_from_did_key(SPEC_DID) == jwk


def test_did_key_round_trips() -> None:
    assert did_key_from_public_jwk(public_jwk_from_did_key(SPEC_OTHER)) == SPEC_OTHER
    for _ in range(5):
        public = generate_key("Ed25519").public_jwk()
        did = did_key_from_public_jwk(public)
        assert did.startswith("did:key:z6Mk")
        assert public_jwk_from_did_key(did) == public
        assert public_jwk_from_did_key(did_key_kid(did)) == public


def test_did_key_refusals() -> None:
    with pytest.raises(ValueError, match="Ed25519 keys only"):
        did_key_from_public_jwk(generate_key("P-256").public_jwk())
    # A P-256 did:key from the spec (multicodec 0x1200) is recognised and refused.
    with pytest.raises(AuthenticationError, match="only Ed25519"):
        public_jwk_from_did_key("did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169")
    with pytest.raises(AuthenticationError, match="base58btc"):
        public_jwk_from_did_key("did:key:m6Mkabc")


def test_find_key_by_relationship() -> None:
    keys = new_keys()
    did = "did:web:h.example"
    doc = build_did_document(did, keys, "https://h.example/dsp/2025-1")
    assert find_key(doc, f"{did}#key-1", "authentication") == keys.signing.public_jwk()
    assert find_key(doc, did, "keyAgreement") == keys.key_agreement.public_jwk()
    with pytest.raises(AuthenticationError, match="unknown key id 'did:web:h.example#key-9'"):
        find_key(doc, f"{did}#key-9", "authentication")
    with pytest.raises(AuthenticationError, match="not listed under authentication"):
        find_key(doc, f"{did}#key-agreement-1", "authentication")
    with pytest.raises(AuthenticationError, match="DID document id"):
        find_key(doc, "did:web:other.example#key-1", "authentication")


def test_find_key_accepts_relative_ids_and_refuses_private_keys() -> None:
    did = "did:web:h.example"
    public = generate_key("Ed25519").public_jwk()
    method: dict[str, Any] = {"id": "#k", "type": "JsonWebKey2020", "publicKeyJwk": public}
    doc: dict[str, Any] = {
        "id": did,
        "verificationMethod": [method],
        "assertionMethod": ["#k"],
    }
    assert find_key(doc, f"{did}#k", "assertionMethod") == public
    method["publicKeyJwk"] = generate_key("Ed25519").private_jwk()
    with pytest.raises(AuthenticationError, match="no usable publicKeyJwk"):
        find_key(doc, f"{did}#k", "assertionMethod")


def test_did_key_document() -> None:
    doc = did_key_document(SPEC_DID)
    kid = did_key_kid(SPEC_DID)
    assert kid == f"{SPEC_DID}#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    assert find_key(doc, kid, "assertionMethod")["x"] == SPEC_X
    with pytest.raises(AuthenticationError, match="unknown key id"):
        find_key(doc, f"{SPEC_DID}#key-1", "assertionMethod")
