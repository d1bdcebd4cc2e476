"""did:web resolution over HTTP(S) with a cache; did:key resolved locally.

One ``DidResolver`` per app, sharing the app's ``httpx.AsyncClient``. Fetch failures are
``UpstreamError`` keeping the URL; a document or key that does not fit is
``AuthenticationError`` with the reason. Plain http is used only for ``host:port`` values in
``insecure_hosts`` (``PHEMS_INSECURE_DID_HOSTS``): every other did:web is fetched over https.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from connector.egress import EgressPolicy
from connector.errors import AuthenticationError, UpstreamError
from connector.identity.did import Relationship, did_key_document, did_to_url, find_key
from connector.identity.signing import PublicJwk
from connector.json_depth import deeper_than
from connector.logs import client_var
from connector.ports import Clock

log = logging.getLogger(__name__)


class DidResolver:
    """Resolves did:web over HTTP(S) (cached for ``cache_seconds``) and did:key locally.

    ``http`` is the app's one ``httpx.AsyncClient``; it is not closed here. Fetch failures are
    ``UpstreamError`` with the URL; a document or key that does not fit is
    ``AuthenticationError`` with the reason.
    """

    max_entries = 1024
    max_document_bytes = 256 * 1024
    # A failed fetch is remembered briefly: anyone may present a token naming a made-up
    # did:web, and must not make us fetch it again on every request.
    failure_ttl = timedelta(seconds=10)

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        *,
        insecure_hosts: Iterable[str] = (),
        cache_seconds: float = 300.0,
        timeout_seconds: float = 10.0,
        fetches_per_minute: int = 30,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._http = http
        self._clock = clock
        self._insecure = frozenset(insecure_hosts)
        self._ttl = timedelta(seconds=cache_seconds)
        self._timeout = timeout_seconds
        self._cache: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._failures: dict[str, tuple[datetime, UpstreamError]] = {}
        self._limit = fetches_per_minute
        # What peers may make us reach (``http`` enforces it; callbacks are checked with it).
        self.egress = egress
        self._fetches: dict[tuple[str, str], list[datetime]] = {}  # (client, host) -> fetches

    async def resolve(self, did: str) -> dict[str, Any]:
        """The DID document of ``did`` (did:web or did:key)."""
        if did.startswith("did:key:"):
            return did_key_document(did)
        url = did_to_url(did, self._insecure)
        now = self._clock.now()
        cached = self._cache.get(did)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        failed = self._failures.get(did)
        if failed is not None and now - failed[0] < self.failure_ttl:
            raise UpstreamError(f"{failed[1].detail} (not retried for a few seconds)")
        # Concurrent requests from a new peer share one fetch instead of each starting one.
        pending = self._pending.get(did)
        if pending is None:
            self._admit(now, did)
            pending = asyncio.ensure_future(self._fetch(did, url))
            self._pending[did] = pending
            pending.add_done_callback(lambda _: self._pending.pop(did, None))
        try:
            document = await asyncio.shield(pending)
        except UpstreamError as exc:
            if len(self._failures) >= self.max_entries:
                self._failures.clear()
            self._failures[did] = (now, exc)
            raise
        self._failures.pop(did, None)
        if self._ttl > timedelta(0):
            self._store(did, now, document)
        return document

    async def resolve_key(
        self, did_url_or_kid: str, relationship: Relationship = "assertionMethod"
    ) -> PublicJwk:
        """Public JWK of ``did:...#fragment`` listed under ``relationship`` in its document."""
        did = did_url_or_kid.split("#", 1)[0]
        if not did.startswith(("did:web:", "did:key:")):
            raise AuthenticationError(f"unsupported DID method: {did_url_or_kid!r}")
        return find_key(await self.resolve(did), did_url_or_kid, relationship)

    def _admit(self, now: datetime, did: str) -> None:
        """Bounds the fetches one request's client may cause: anyone may present tokens naming
        made-up did:web DIDs, each of which we would otherwise fetch. At most
        ``fetches_per_minute`` for DIDs on one host, and ten times that over all hosts (behind
        a proxy that hides client addresses, the second bound is shared by every client, the
        first still by those naming that host only)."""
        caller = client_var.get()
        if not caller:  # not serving a request (a credential issuer, the sender)
            return
        host = did.removeprefix("did:web:").split(":", 1)[0]
        window = now - timedelta(minutes=1)
        for key, limit in (((caller, host), self._limit), ((caller, ""), self._limit * 10)):
            recent = [t for t in self._fetches.get(key, []) if t > window]
            if len(recent) >= limit:
                if len(recent) == limit:  # one line per bound and window
                    log.warning(
                        "refused to resolve %s for %s: more than %d new DIDs a minute%s",
                        did,
                        caller,
                        limit,
                        f" on {host}" if key[1] else "",
                    )
                    self._fetches[key] = [*recent, now]
                raise UpstreamError(f"too many unknown DIDs from {caller}; try again in a minute")
        for key in ((caller, host), (caller, "")):
            if len(self._fetches) >= self.max_entries and key not in self._fetches:
                self._fetches.clear()
            self._fetches[key] = [*(t for t in self._fetches.get(key, []) if t > window), now]

    def _store(self, did: str, now: datetime, document: dict[str, Any]) -> None:
        if len(self._cache) >= self.max_entries:
            for key in [k for k, (at, _) in self._cache.items() if now - at >= self._ttl]:
                del self._cache[key]
            while len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]
        self._cache.pop(did, None)
        self._cache[did] = (now, document)

    async def _fetch(self, did: str, url: str) -> dict[str, Any]:
        body = bytearray()
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/did+json, application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise UpstreamError(
                        f"DID document of {did}: HTTP {response.status_code}", url=url
                    )
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_document_bytes:
                        raise UpstreamError(f"DID document of {did} is too large", url=url)
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise UpstreamError(f"cannot fetch DID document of {did}: {reason}", url=url) from None
        try:
            document = orjson.loads(bytes(body))  # orjson stops at depth 1024
        except ValueError:
            raise UpstreamError(f"DID document of {did} is not JSON", url=url) from None
        if deeper_than(document, 32):  # walked recursively later (keys, service endpoints)
            raise UpstreamError(f"DID document of {did} is nested too deeply", url=url)
        if not isinstance(document, dict) or document.get("id") != did:
            found = document.get("id") if isinstance(document, dict) else None
            raise AuthenticationError(f"DID document at {url} has id {found!r}, not {did!r}")
        return document
