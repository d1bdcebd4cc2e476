"""Authentication to a FHIR server: none, static bearer, basic, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the client
signs a short-lived JWT (``private_key_jwt``, RS384 or ES384) and trades it at the token endpoint
for an access token with ``grant_type=client_credentials``. The token is cached until shortly
before it expires, and dropped when the FHIR server answers 401 so the next attempt fetches a
fresh one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connector.errors import ConfigurationError, FhirSourceError

if TYPE_CHECKING:
    from adapters.fhir.http import FhirHttp

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # SMART: exp no more than five minutes in the future
EXPIRY_MARGIN = 30  # refresh a token this many seconds before the server would refuse it

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class FhirAuth(Protocol):
    async def authorization(self, http: FhirHttp) -> str | None:
        """The ``Authorization`` header value for the next request (None: send none)."""
        ...

    def invalidate(self) -> bool:
        """Forget cached credentials after a 401; True if retrying can then succeed."""
        ...


class NoAuth:
    async def authorization(self, http: FhirHttp) -> str | None:
        return None

    def invalidate(self) -> bool:
        return False


class BearerAuth:
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    async def authorization(self, http: FhirHttp) -> str | None:
        return self._header

    def invalidate(self) -> bool:
        return False


class BasicAuth:
    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")

    async def authorization(self, http: FhirHttp) -> str | None:
        return self._header

    def invalidate(self) -> bool:
        return False


@dataclass(frozen=True)
class SmartKey:
    key: SigningKey
    alg: str
    kid: str


def load_smart_key(path: Path) -> SmartKey:
    """Read a private key (PEM, or a JWK JSON object) and pick its SMART algorithm."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"SMART key file {path}: {exc.strerror or exc}") from None
    kid = ""
    try:
        if raw.lstrip().startswith(b"{"):
            jwk_dict = json.loads(raw)
            kid = str(jwk_dict.get("kid", ""))
            loaded: object = jwt.PyJWK(jwk_dict).key
        else:
            loaded = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError, jwt.PyJWKError) as exc:
        raise ConfigurationError(
            f"SMART key file {path}: not a private PEM or JWK ({exc})"
        ) from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        alg = "RS384"
    elif isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name == "secp384r1":
        alg = "ES384"
    else:
        raise ConfigurationError(
            f"SMART key file {path}: SMART Backend Services needs an RSA or EC P-384 private key"
        )
    return SmartKey(loaded, alg, kid or jwk_thumbprint(loaded))


def jwk_thumbprint(key: SigningKey) -> str:
    """RFC 7638 thumbprint of the public key: the conventional ``kid``."""
    members: dict[str, str]
    if isinstance(key, rsa.RSAPrivateKey):
        rsa_numbers = key.public_key().public_numbers()
        members = {"e": _b64_int(rsa_numbers.e), "kty": "RSA", "n": _b64_int(rsa_numbers.n)}
    else:
        ec_numbers = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        members = {
            "crv": "P-384",
            "kty": "EC",
            "x": _b64(ec_numbers.x.to_bytes(size, "big")),
            "y": _b64(ec_numbers.y.to_bytes(size, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SmartBackendAuth:
    """``client_credentials`` with a signed ``private_key_jwt`` assertion; caches the token."""

    def __init__(
        self,
        *,
        client_id: str,
        key: SmartKey,
        scope: str,
        token_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_id = client_id
        self._key = key
        self._scope = scope
        self._token_url = token_url
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def authorization(self, http: FhirHttp) -> str | None:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - EXPIRY_MARGIN:
                await self._fetch_token(http)
            return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        self._token = None
        return True

    async def _token_endpoint(self, http: FhirHttp) -> str:
        if not self._token_url:
            url = f"{http.base_url}/.well-known/smart-configuration"
            config = await http.get_json(url, authenticate=False)
            endpoint = config.get("token_endpoint") if isinstance(config, dict) else None
            if not isinstance(endpoint, str) or not endpoint:
                raise FhirSourceError(
                    "SMART configuration has no token_endpoint; set PHEMS_FHIR_SMART_TOKEN_URL",
                    url=url,
                )
            self._token_url = endpoint
        return self._token_url

    async def _fetch_token(self, http: FhirHttp) -> None:
        token_url = await self._token_endpoint(http)
        now = int(self._clock())
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": token_url,
            "exp": now + ASSERTION_LIFETIME,
            "iat": now,
            "jti": secrets.token_urlsafe(24),
        }
        assertion = jwt.encode(
            claims, self._key.key, algorithm=self._key.alg, headers={"kid": self._key.kid}
        )
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        body = await http.post_form(token_url, form, authenticate=False)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FhirSourceError("SMART token response has no access_token", url=token_url)
        expires_in = body.get("expires_in", 300) if isinstance(body, dict) else 300
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        self._token = token
        self._expires_at = self._clock() + lifetime
