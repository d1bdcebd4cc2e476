"""OIDC bearer tokens for the management API: the hospital's identity provider (e.g. Keycloak)
issues access tokens; we check signature (keys from the issuer's JWKS, found by OIDC
discovery and cached), issuer, audience and expiry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import jwt

from connector.errors import AuthenticationError, UpstreamError

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OidcVerifier:
    def __init__(
        self, http: httpx.AsyncClient, *, issuer: str, audience: str, cache_seconds: float = 300
    ) -> None:
        self._http = http
        self.issuer = issuer
        self.audience = audience
        self._cache_seconds = cache_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``AuthenticationError`` with the reason."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"management API: not a JWT ({exc})") from None
        kid = header.get("kid")
        key = await self._key(str(kid) if kid is not None else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"management API: OIDC token refused: {exc}") from None
        return claims

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self._cache_seconds
            if stale or (kid is not None and kid not in self._keys):
                await self._refresh()
        if kid is None:
            if len(self._keys) != 1:
                raise AuthenticationError("management API: OIDC token has no kid")
            return next(iter(self._keys.values()))
        try:
            return self._keys[kid]
        except KeyError:
            raise AuthenticationError(f"management API: unknown OIDC key {kid!r}") from None

    async def _refresh(self) -> None:
        discovery = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if discovery.get("issuer") != self.issuer or not isinstance(discovery.get("jwks_uri"), str):
            raise UpstreamError(
                "OIDC discovery does not match the configured issuer", url=self.issuer
            )
        jwks = await self._get_json(discovery["jwks_uri"])
        keys: dict[str, jwt.PyJWK] = {}
        for entry in jwks.get("keys", []):
            if isinstance(entry, dict) and entry.get("use", "sig") == "sig":
                try:
                    keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                except jwt.PyJWTError:
                    continue  # a key type we cannot use; the others still work
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"OIDC issuer unreachable: {exc}", url=url) from None
        if not isinstance(body, dict):
            raise UpstreamError("OIDC document is not a JSON object", url=url)
        return body
