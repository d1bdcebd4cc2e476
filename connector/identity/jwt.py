"""JWTs signed by a DID's key: the part tokens and credentials share.

A JWT here is a compact JWS (EdDSA or ES256) whose header ``kid`` is a DID URL of the issuer
(``iss``). Checking it is split in two so callers can refuse cheaply (claims, trust list)
before anything is fetched over the network: ``parse_jwt`` reads without trusting, then
``verify_jwt_signature`` resolves the key and checks the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from connector.errors import AuthenticationError
from connector.identity.did import Relationship
from connector.identity.resolver import DidResolver
from connector.identity.signing import SIGNING_ALGS, decode_jws_unverified, verify_jws
from connector.json_depth import deeper_than

ALGS = frozenset(SIGNING_ALGS.values())

MAX_CLAIMS_DEPTH = 16  # a VC's credentialSubject is a few levels; ours nest 4


@dataclass(frozen=True)
class UnverifiedJwt:
    """Header and claims as sent; nothing in here is trusted until the signature is checked."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.header["kid"])

    @property
    def iss(self) -> str:
        return str(self.claims["iss"])


def parse_jwt(token: str, what: str = "token") -> UnverifiedJwt:
    """Decode a JWT without verifying; refuse anything that is not shaped as we sign them."""
    header, payload = decode_jws_unverified(token.strip())
    if header.get("alg") not in ALGS:
        raise AuthenticationError(f"{what}: alg {header.get('alg')!r} not allowed (EdDSA, ES256)")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise AuthenticationError(f"{what}: header has no kid")
    try:
        claims = orjson.loads(payload)  # a peer's: orjson stops at depth 1024
    except ValueError:
        raise AuthenticationError(f"{what}: payload is not JSON") from None
    if not isinstance(claims, dict):
        raise AuthenticationError(f"{what}: payload is not a JSON object")
    if deeper_than(claims, MAX_CLAIMS_DEPTH):
        raise AuthenticationError(f"{what}: claims nested more than {MAX_CLAIMS_DEPTH} levels")
    if not isinstance(claims.get("iss"), str) or not claims["iss"]:
        raise AuthenticationError(f"{what}: no iss claim")
    return UnverifiedJwt(token=token.strip(), header=header, claims=claims)


async def verify_jwt_signature(
    jwt: UnverifiedJwt, resolver: DidResolver, relationship: Relationship, what: str = "token"
) -> None:
    """The ``kid`` must be a key of ``iss`` listed under ``relationship``, and must verify."""
    if jwt.kid.split("#", 1)[0] != jwt.iss:
        raise AuthenticationError(f"{what}: key id {jwt.kid!r} does not belong to iss {jwt.iss!r}")
    public_jwk = await resolver.resolve_key(jwt.kid, relationship)
    try:
        verify_jws(jwt.token, public_jwk)
    except AuthenticationError as exc:
        raise AuthenticationError(f"{what}: {exc.detail} (key {jwt.kid})") from None


def numeric_date(claims: dict[str, Any], name: str, what: str = "token") -> datetime | None:
    """A NumericDate claim as an aware datetime; None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(f"{what}: claim {name} is not a NumericDate")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise AuthenticationError(f"{what}: claim {name} is out of range") from None


def required_date(claims: dict[str, Any], name: str, what: str = "token") -> datetime:
    found = numeric_date(claims, name, what)
    if found is None:
        raise AuthenticationError(f"{what}: no {name} claim")
    return found
