"""DIDs: did:web (W3C CCG did:web method) and did:key (Ed25519), DID documents, key lookup.

did:web maps ``https://host:port/a/b`` to ``did:web:host%3Aport:a:b``; its document is at
``https://host:port/.well-known/did.json`` (no path) or ``https://host:port/a/b/did.json``.
Plain http is used only for ``host:port`` values in the insecure list (loopback tests, demo).
did:key (w3c-ccg did-method-key) carries an Ed25519 key itself: multicodec ``0xed 0x01`` plus
the 32 key bytes, base58btc with the multibase prefix ``z``; it resolves without a network
(``connector.identity.resolver`` fetches did:web documents).

A key is looked up by its DID URL (``did:web:...#key-1``) *and* a verification relationship
(``authentication`` for tokens, ``assertionMethod`` for credentials and agreements,
``keyAgreement`` for X25519): a key the document does not list there is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

from connector.errors import AuthenticationError, ConfigurationError
from connector.identity.keys import ConnectorKeys
from connector.identity.signing import (
    InvalidKeyError,
    PublicJwk,
    b64url_decode,
    b64url_encode,
    key_kind,
)

Relationship = Literal["authentication", "assertionMethod", "keyAgreement"]

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
JWS_2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
SIGNING_FRAGMENT = "key-1"
KEY_AGREEMENT_FRAGMENT = "key-agreement-1"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ED25519_MULTICODEC = b"\xed\x01"


# did:web ------------------------------------------------------------------------------------


def did_from_url(public_url: str) -> str:
    """The did:web DID of a connector reachable at ``public_url``."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"PHEMS_PUBLIC_URL: not an http(s) URL: {public_url!r}")
    if parts.username or parts.query or parts.fragment:
        raise ConfigurationError(
            f"PHEMS_PUBLIC_URL: no user, query or fragment allowed: {public_url!r}"
        )
    netloc = parts.netloc.lower()
    segments = [quote(unquote(s), safe="") for s in parts.path.split("/") if s]
    return ":".join(["did:web", quote(netloc, safe=""), *segments])


def _web_parts(did: str) -> tuple[str, list[str]]:
    if not did.startswith("did:web:") or "#" in did or "?" in did:
        raise AuthenticationError(f"not a did:web DID: {did!r}")
    host, *segments = did.removeprefix("did:web:").split(":")
    netloc = unquote(host)
    if not netloc or "/" in netloc or "@" in netloc or any(not s for s in segments):
        raise AuthenticationError(f"not a valid did:web DID: {did!r}")
    return netloc, [unquote(s) for s in segments]


def did_to_url(did: str, insecure_hosts: Iterable[str] = ()) -> str:
    """URL of the DID document of a did:web DID; https unless ``host:port`` is listed insecure."""
    netloc, segments = _web_parts(did)
    scheme = "http" if netloc in set(insecure_hosts) else "https"
    path = "/" + "/".join(quote(s, safe="") for s in segments) if segments else "/.well-known"
    return f"{scheme}://{netloc}{path}/did.json"


def build_did_document(did: str, keys: ConnectorKeys, service_endpoint: str) -> dict[str, Any]:
    """The connector's did.json: signing key ``#key-1``, X25519 ``#key-agreement-1``, and a
    ``DataService`` entry pointing at the DSP base URL."""
    signing_id, agreement_id = f"{did}#{SIGNING_FRAGMENT}", f"{did}#{KEY_AGREEMENT_FRAGMENT}"
    return {
        "@context": [DID_CONTEXT, JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": signing_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": keys.signing.public_jwk(),
            },
            {
                "id": agreement_id,
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": keys.key_agreement.public_jwk(),
            },
        ],
        "authentication": [signing_id],
        "assertionMethod": [signing_id],
        "keyAgreement": [agreement_id],
        "service": [
            {"id": f"{did}#dsp", "type": "DataService", "serviceEndpoint": service_endpoint}
        ],
    }


# did:key ------------------------------------------------------------------------------------


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def did_key_from_public_jwk(public_jwk: dict[str, Any]) -> str:
    """did:key of an Ed25519 public key."""
    if key_kind(public_jwk) != "Ed25519":
        raise InvalidKeyError("did:key is supported for Ed25519 keys only")
    raw = b64url_decode(str(public_jwk["x"]))
    return "did:key:z" + base58_encode(_ED25519_MULTICODEC + raw)


def public_jwk_from_did_key(did: str) -> PublicJwk:
    """The Ed25519 public JWK a did:key (with or without fragment) carries."""
    value = did.removeprefix("did:key:").split("#", 1)[0]
    if not did.startswith("did:key:") or not value.startswith("z"):
        raise AuthenticationError(f"not a base58btc did:key: {did!r}")
    try:
        decoded = base58_decode(value[1:])
    except ValueError as exc:
        raise AuthenticationError(f"invalid did:key {did!r}: {exc}") from None
    if not decoded.startswith(_ED25519_MULTICODEC) or len(decoded) != 34:
        raise AuthenticationError(f"unsupported did:key {did!r}: only Ed25519 (z6Mk...) keys")
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(decoded[2:])}


def did_key_kid(did: str) -> str:
    """The verification method id of a did:key: ``did:key:z6Mk...#z6Mk...``."""
    return f"{did}#{did.removeprefix('did:key:')}"


# key lookup in a document ---------------------------------------------------------------------


def _absolute(ref: str, did: str) -> str:
    return did + ref if ref.startswith("#") else ref


def find_key(document: dict[str, Any], kid: str, relationship: Relationship) -> PublicJwk:
    """The public JWK of verification method ``kid`` if the document lists it under
    ``relationship``; ``kid`` without a fragment picks the single key listed there."""
    did, _, fragment = kid.partition("#")
    if document.get("id") != did:
        raise AuthenticationError(f"DID document id {document.get('id')!r} is not {did!r}")
    methods: dict[str, dict[str, Any]] = {}
    for method in document.get("verificationMethod") or []:
        if isinstance(method, dict) and isinstance(method.get("id"), str):
            methods[_absolute(method["id"], did)] = method
    listed: list[str] = []
    for ref in document.get(relationship) or []:
        if isinstance(ref, dict) and isinstance(ref.get("id"), str):
            methods.setdefault(_absolute(ref["id"], did), ref)
            listed.append(_absolute(ref["id"], did))
        elif isinstance(ref, str):
            listed.append(_absolute(ref, did))
    if fragment:
        target = kid
        if target not in methods:
            raise AuthenticationError(f"unknown key id {kid!r}: not in the DID document of {did}")
        if target not in listed:
            raise AuthenticationError(f"key {kid!r} is not listed under {relationship} of {did}")
    elif len(listed) == 1:
        target = listed[0]
    elif not listed:
        raise AuthenticationError(f"{did} lists no {relationship} key")
    else:
        raise AuthenticationError(f"{did} lists {len(listed)} {relationship} keys; name one")
    jwk = methods.get(target, {}).get("publicKeyJwk")
    if not isinstance(jwk, dict) or "d" in jwk:
        raise AuthenticationError(f"key {target!r} has no usable publicKeyJwk")
    try:
        key_kind(jwk)
    except InvalidKeyError as exc:
        raise AuthenticationError(f"key {target!r}: {exc}") from None
    return {str(k): str(v) for k, v in jwk.items()}


def did_key_document(did: str) -> dict[str, Any]:
    """The DID document of an Ed25519 did:key (signing relationships only)."""
    kid = did_key_kid(did)
    method = {
        "id": kid,
        "type": "JsonWebKey2020",
        "controller": did,
        "publicKeyJwk": public_jwk_from_did_key(did),
    }
    return {
        "@context": [DID_CONTEXT, JWS_2020_CONTEXT],
        "id": did,
        "verificationMethod": [method],
        "authentication": [kid],
        "assertionMethod": [kid],
    }
