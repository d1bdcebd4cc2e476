"""OIDC bearer tokens for the management API: the hospital's identity provider (e.g. Keycloak)
issues access tokens; we check signature (keys from the issuer's JWKS, found by OIDC
discovery and cached), issuer, audience and expiry.

Anyone can send a token with a made-up ``kid``, so a key we do not know must not cost a fetch
each time: the keys are fetched when ``cache_seconds`` have passed, and for an unknown ``kid``
at most once every ``min_refresh_seconds`` (a key the issuer just rotated in is found by the
next such refresh); between refreshes an unknown ``kid`` is refused at once. Requests with a
known key never wait for a refresh: only the refresh itself is serialised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from connector.errors import AuthenticationError, UpstreamError

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OidcVerifier:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        audience: str,
        cache_seconds: float = 300,
        min_refresh_seconds: float = 30,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.issuer = issuer
        self.audience = audience
        self._cache_seconds = cache_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._now = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")  # last successful refresh
        self._tried_at = -float("inf")  # last attempt, successful or not
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
        now = self._now()
        stale = now - self._fetched_at > self._cache_seconds
        unknown = kid is not None and kid not in self._keys
        may_retry = now - self._tried_at >= self._min_refresh_seconds
        # A known key whose cache is stale does not wait for a refresh already under way.
        busy = self._lock.locked() and not unknown
        if (stale or unknown) and may_retry and not busy:
            async with self._lock:
                # Whoever waited here may find the refresh done by the one before.
                if self._now() - self._tried_at >= self._min_refresh_seconds:
                    self._tried_at = self._now()
                    try:
                        await self._refresh()
                    except UpstreamError:
                        if not self._keys:
                            raise
                        # Keep the keys we have until the issuer answers again.
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
        self._fetched_at = self._now()

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
