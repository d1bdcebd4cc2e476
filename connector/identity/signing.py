"""Typed keys and signatures: the only module that touches jwcrypto (STYLE.md 12).

Keys are JWKs: Ed25519 (``EdDSA``) and P-256 (``ES256``) sign, X25519 agrees on secrets.
Compact JWS is RFC 7515; canonical JSON is RFC 8785 (JCS). Everything else in the connector
uses ``PrivateKey``, plain public-JWK dicts and the functions below.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal, cast

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from jwcrypto import jwa, jwk
from jwcrypto.common import JWException

from connector.errors import AuthenticationError

KeyKind = Literal["Ed25519", "P-256", "X25519"]
PublicJwk = dict[str, str]

SIGNING_ALGS: dict[str, str] = {"Ed25519": "EdDSA", "P-256": "ES256"}
_SIGNATURE_BYTES: dict[str, int] = {"EdDSA": 64, "ES256": 64}  # Ed25519; P-256 r || s
_KTY: dict[str, str] = {"Ed25519": "OKP", "X25519": "OKP", "P-256": "EC"}


class InvalidKeyError(ValueError):
    """A JWK that is malformed or of a kind we do not support; the message says why."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {exc}") from None


def key_kind(public_jwk: dict[str, Any]) -> KeyKind:
    """The kind of a JWK, or ``InvalidKeyError`` for anything but Ed25519, P-256 and X25519."""
    kty, crv = public_jwk.get("kty"), public_jwk.get("crv")
    for kind, expected_kty in _KTY.items():
        if crv == kind and kty == expected_kty:
            return cast(KeyKind, kind)
    raise InvalidKeyError(
        f"unsupported key type kty={kty!r} crv={crv!r} (want Ed25519, P-256, X25519)"
    )


def _import(jwk_dict: dict[str, Any], *, private: bool) -> jwk.JWK:
    key_kind(jwk_dict)
    try:
        key = jwk.JWK(**jwk_dict)
    except (JWException, ValueError, TypeError) as exc:
        raise InvalidKeyError(f"invalid JWK: {exc}") from None
    if private and not key.has_private:
        raise InvalidKeyError("JWK has no private part ('d')")
    return key


class PrivateKey:
    """A private key of one of the supported kinds; never serialised except by ``save``."""

    def __init__(self, private_jwk: dict[str, Any]) -> None:
        self._jwk = _import(private_jwk, private=True)
        self.kind: KeyKind = key_kind(private_jwk)

    @property
    def alg(self) -> str:
        """JWS algorithm of a signing key; ``InvalidKeyError`` for a key agreement key."""
        if self.kind not in SIGNING_ALGS:
            raise InvalidKeyError(f"{self.kind} keys cannot sign")
        return SIGNING_ALGS[self.kind]

    def public_jwk(self) -> PublicJwk:
        exported = self._jwk.export_public(as_dict=True)
        return {k: str(v) for k, v in exported.items() if k in ("kty", "crv", "x", "y")}

    def private_jwk(self) -> dict[str, str]:
        exported = self._jwk.export_private(as_dict=True)
        return {k: str(v) for k, v in exported.items() if k in ("kty", "crv", "x", "y", "d")}

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint of the public key."""
        return str(self._jwk.thumbprint())

    def __repr__(self) -> str:
        return f"PrivateKey({self.kind}, {self.thumbprint()[:8]}...)"


def generate_key(kind: KeyKind) -> PrivateKey:
    generated = jwk.JWK.generate(kty=_KTY[kind], crv=kind)
    return PrivateKey(generated.export_private(as_dict=True))


def load_private_jwk(path: Path) -> PrivateKey:
    """Read a private JWK file: ``OSError`` if unreadable, ``InvalidKeyError`` if unusable."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidKeyError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidKeyError("not a JSON object")
    return PrivateKey(data)


def save_private_jwk(key: PrivateKey, path: Path) -> None:
    """Write atomically with mode 0600 (the key never exists on disk with wider permissions)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(key.private_jwk(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sign_jws(
    payload: bytes, key: PrivateKey, kid: str, *, extra_header: dict[str, str] | None = None
) -> str:
    """Compact JWS over ``payload`` with ``alg`` from the key and ``kid`` in the header.

    The JWS Compact Serialization (RFC 7515 7.1) is assembled here and the signature made by
    jwcrypto's algorithm (``jwa``): going through a ``jws.JWS`` object cost three times the
    signature itself (header re-parsing, JWK checks) on every DSP message.
    """
    header: dict[str, str] = {"alg": key.alg, "kid": kid, **(extra_header or {})}
    signing_input = (
        b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url_encode(payload)
    )
    signature = jwa.JWA.signing_alg(key.alg).sign(key._jwk, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def decode_jws_unverified(token: str) -> tuple[dict[str, Any], bytes]:
    """Header and payload of a compact JWS *without* checking the signature (to find the
    key to check it with). ``AuthenticationError`` if it is not a compact JWS."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("not a compact JWS (expected three dot-separated parts)")
    try:
        header = orjson.loads(b64url_decode(parts[0]))  # a peer's: orjson stops at depth 1024
        payload = b64url_decode(parts[1])
    except ValueError as exc:
        raise AuthenticationError(f"malformed JWS: {exc}") from None
    if not isinstance(header, dict):
        raise AuthenticationError("malformed JWS: header is not a JSON object")
    if "crit" in header or "b64" in header:
        # RFC 7797 unencoded payloads would make the signed bytes differ from what we read.
        raise AuthenticationError("JWS header parameters crit/b64 are not supported")
    return header, payload


@functools.lru_cache(maxsize=512)
def _public_key(items: tuple[tuple[str, Any], ...]) -> jwk.JWK:
    """An imported public key, kept: importing costs more than the verification itself, and
    the same few peer keys verify every request."""
    return _import(dict(items), private=False)


def verify_jws(token: str, public_jwk: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS against ``public_jwk``; return (header, payload).

    The algorithm is fixed by the key (EdDSA for Ed25519, ES256 for P-256): a header naming
    another one is refused, so ``none`` or an algorithm confusion cannot get through.
    """
    header, payload = decode_jws_unverified(token)
    try:
        kind = key_kind(public_jwk)
    except InvalidKeyError as exc:
        raise AuthenticationError(f"cannot verify with this key: {exc}") from None
    if kind not in SIGNING_ALGS:
        raise AuthenticationError(f"cannot verify with a {kind} key (key agreement only)")
    alg = SIGNING_ALGS[kind]
    if header.get("alg") != alg:
        raise AuthenticationError(f"JWS alg {header.get('alg')!r} does not match {kind} key")
    members = {k: v for k, v in public_jwk.items() if k != "d"}
    try:
        try:
            key = _public_key(tuple(sorted(members.items())))
        except TypeError:  # a member that is a list or object (e.g. key_ops): not cached
            key = _import(members, private=False)
    except InvalidKeyError as exc:
        raise AuthenticationError(f"cannot verify with this key: {exc}") from None
    # The header and payload were read from these same two parts by decode_jws_unverified;
    # the signature is checked by jwcrypto's algorithm over exactly those bytes (RFC 7515 5.2).
    protected, encoded_payload, encoded_signature = token.split(".")
    try:
        signature = b64url_decode(encoded_signature)
    except ValueError as exc:
        raise AuthenticationError(f"malformed JWS: {exc}") from None
    if len(signature) != _SIGNATURE_BYTES[alg]:
        raise AuthenticationError(
            f"signature does not verify ({alg} signatures are {_SIGNATURE_BYTES[alg]} bytes, "
            f"this one is {len(signature)})"
        )
    try:
        jwa.JWA.signing_alg(alg).verify(
            key, f"{protected}.{encoded_payload}".encode("ascii"), signature
        )
    except (InvalidSignature, JWException, ValueError) as exc:
        raise AuthenticationError(
            f"signature does not verify ({exc or 'invalid signature'})"
        ) from None
    return header, payload


def derive_shared_secret(private: PrivateKey, peer_public_jwk: dict[str, Any]) -> bytes:
    """Raw X25519 ECDH shared secret (32 bytes); feed it to HKDF, never use it directly."""
    if private.kind != "X25519":
        raise InvalidKeyError(f"ECDH needs an X25519 key, not {private.kind}")
    if key_kind(peer_public_jwk) != "X25519":
        raise InvalidKeyError("peer key is not X25519")
    own = private._jwk.get_op_key("unwrapKey")
    if not isinstance(own, X25519PrivateKey):
        raise InvalidKeyError("X25519 private key unavailable")
    try:
        peer = X25519PublicKey.from_public_bytes(b64url_decode(str(peer_public_jwk["x"])))
    except (KeyError, ValueError) as exc:
        raise InvalidKeyError(f"invalid X25519 peer key: {exc}") from None
    try:
        return own.exchange(peer)
    except ValueError as exc:  # all-zero output: a small-order peer key
        raise InvalidKeyError(f"X25519 agreement failed: {exc}") from None
