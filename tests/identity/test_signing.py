from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwcrypto import jwk, jws

from connector.canonical import canonical_json
from connector.errors import AuthenticationError
from connector.identity.signing import (
    InvalidKeyError,
    KeyKind,
    PrivateKey,
    b64url_decode,
    b64url_encode,
    decode_jws_unverified,
    derive_shared_secret,
    generate_key,
    load_private_jwk,
    save_private_jwk,
    sign_jws,
    verify_jws,
)


@pytest.mark.parametrize(("kind", "alg"), [("Ed25519", "EdDSA"), ("P-256", "ES256")])
def test_sign_verify_round_trip(kind: KeyKind, alg: str) -> None:
    key = generate_key(kind)
    token = sign_jws(b'{"a":1}', key, "did:web:x#key-1")
    header, payload = verify_jws(token, key.public_jwk())
    assert header == {"alg": alg, "kid": "did:web:x#key-1"}
    assert payload == b'{"a":1}'


def test_ed25519_signature_checked_by_independent_implementation() -> None:
    key = generate_key("Ed25519")
    token = sign_jws(b"payload", key, "k")
    signing_input, signature = token.rsplit(".", 1)
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(key.public_jwk()["x"]))
    public.verify(b64url_decode(signature), signing_input.encode())  # raises if wrong


@pytest.mark.parametrize(("kind", "alg"), [("Ed25519", "EdDSA"), ("P-256", "ES256")])
def test_interoperates_with_jwcrypto_jws_objects(kind: KeyKind, alg: str) -> None:
    """Our compact JWS is what jwcrypto's full JWS implementation makes and checks, both ways."""
    key = generate_key(kind)
    ours = sign_jws(b'{"n":1}', key, "k")
    theirs = jws.JWS()
    theirs.deserialize(ours)
    theirs.verify(jwk.JWK(**key.public_jwk()), alg=alg)  # raises if it does not verify
    assert theirs.payload == b'{"n":1}'
    made = jws.JWS(b'{"n":2}')
    made.add_signature(jwk.JWK(**key.private_jwk()), alg=alg, protected=json.dumps({"alg": alg}))
    assert verify_jws(made.serialize(compact=True), key.public_jwk()) == ({"alg": alg}, b'{"n":2}')


@pytest.mark.parametrize("signature", ["", "AAAA", b64url_encode(bytes(65)), "%%%"])
def test_signature_of_the_wrong_size_or_encoding_is_refused(signature: str) -> None:
    for kind in ("Ed25519", "P-256"):
        key = generate_key(kind)  # type: ignore[arg-type]
        header, payload, _ = sign_jws(b"x", key, "k").split(".")
        with pytest.raises(AuthenticationError, match="malformed JWS|signature does not verify"):
            verify_jws(f"{header}.{payload}.{signature}", key.public_jwk())


def test_tampered_payload_is_refused() -> None:
    key = generate_key("Ed25519")
    header, _, signature = sign_jws(b"pay 1", key, "k").split(".")
    forged = f"{header}.{b64url_encode(b'pay 2')}.{signature}"
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        verify_jws(forged, key.public_jwk())


def test_other_key_is_refused() -> None:
    token = sign_jws(b"x", generate_key("Ed25519"), "k")
    with pytest.raises(AuthenticationError, match="signature does not verify"):
        verify_jws(token, generate_key("Ed25519").public_jwk())


def test_alg_must_match_key_kind() -> None:
    token = sign_jws(b"x", generate_key("P-256"), "k")
    with pytest.raises(AuthenticationError, match="does not match Ed25519 key"):
        verify_jws(token, generate_key("Ed25519").public_jwk())


def test_alg_none_is_refused() -> None:
    key = generate_key("Ed25519")
    header = b64url_encode(json.dumps({"alg": "none", "kid": "k"}).encode())
    with pytest.raises(AuthenticationError, match="'none' does not match"):
        verify_jws(f"{header}.{b64url_encode(b'x')}.", key.public_jwk())


def test_key_agreement_key_cannot_verify() -> None:
    token = sign_jws(b"x", generate_key("Ed25519"), "k")
    with pytest.raises(AuthenticationError, match="key agreement only"):
        verify_jws(token, generate_key("X25519").public_jwk())


def test_x25519_cannot_sign() -> None:
    with pytest.raises(InvalidKeyError, match="cannot sign"):
        sign_jws(b"x", generate_key("X25519"), "k")


def test_malformed_jws() -> None:
    with pytest.raises(AuthenticationError, match="three dot-separated parts"):
        decode_jws_unverified("abc.def")
    with pytest.raises(AuthenticationError, match="malformed JWS"):
        decode_jws_unverified("!!!.e30.x")


def test_public_jwk_has_no_private_part() -> None:
    kinds: tuple[KeyKind, ...] = ("Ed25519", "P-256", "X25519")
    for kind in kinds:
        public = generate_key(kind).public_jwk()
        assert "d" not in public
        assert public["crv"] == kind


def test_unsupported_key_types() -> None:
    with pytest.raises(InvalidKeyError, match="unsupported key type"):
        PrivateKey({"kty": "RSA", "n": "x", "e": "AQAB", "d": "y"})
    public_only = generate_key("Ed25519").public_jwk()
    with pytest.raises(InvalidKeyError, match="no private part"):
        PrivateKey(public_only)


def test_save_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = generate_key("P-256")
    path = tmp_path / "k.jwk"
    save_private_jwk(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_private_jwk(path)
    assert loaded.thumbprint() == key.thumbprint()
    assert loaded.kind == "P-256"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_load_rejects_non_json(tmp_path: Path) -> None:
    path = tmp_path / "k.jwk"
    path.write_text("not json")
    with pytest.raises(InvalidKeyError, match="not JSON"):
        load_private_jwk(path)


def test_canonical_json_rfc8785() -> None:
    # RFC 8785 section 3.2.2 style: sorted keys, no whitespace, shortest number forms.
    value = {"b": [1.0, 1e30, "\u20ac"], "a": {"z": None, "y": True}}
    assert canonical_json(value) == '{"a":{"y":true,"z":null},"b":[1,1e+30,"€"]}'.encode()


def test_x25519_agreement_is_symmetric_and_key_specific() -> None:
    a, b, c = generate_key("X25519"), generate_key("X25519"), generate_key("X25519")
    shared = derive_shared_secret(a, b.public_jwk())
    assert len(shared) == 32
    assert shared == derive_shared_secret(b, a.public_jwk())
    assert shared != derive_shared_secret(a, c.public_jwk())


def test_x25519_agreement_refuses_other_kinds() -> None:
    with pytest.raises(InvalidKeyError, match="needs an X25519 key"):
        derive_shared_secret(generate_key("Ed25519"), generate_key("X25519").public_jwk())
    with pytest.raises(InvalidKeyError, match="peer key is not X25519"):
        derive_shared_secret(generate_key("X25519"), generate_key("Ed25519").public_jwk())


def test_unencoded_payload_option_is_refused() -> None:
    key = generate_key("Ed25519")
    header = {"alg": "EdDSA", "kid": "k", "crit": ["b64"], "b64": False}
    token = f"{b64url_encode(json.dumps(header).encode())}.eA.{b64url_encode(bytes(64))}"
    with pytest.raises(AuthenticationError, match="crit/b64 are not supported"):
        verify_jws(token, key.public_jwk())


def test_a_deeply_nested_jws_header_is_refused_not_a_crash() -> None:
    header = b64url_encode(b"[" * 100_000)  # stdlib json would raise RecursionError (a 500)
    with pytest.raises(AuthenticationError, match="malformed JWS"):
        decode_jws_unverified(f"{header}.e30.c2ln")
