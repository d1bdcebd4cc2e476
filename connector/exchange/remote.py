"""Calls to other connectors made on an operator's request (not DSP state changes, which go
through the outbox): fetching a counterparty's DSP catalog, one page or all of it; a fresh
data plane token for a transfer we consume."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from connector.dsp.urls import join_url
from connector.errors import PolicyViolationError, UpstreamError
from connector.identity.tokens import TokenIssuer
from connector.json_depth import deeper_than
from connector.peer_http import capped_request

CATALOG_REQUEST = {
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
    "@type": "CatalogRequestMessage",
}
MAX_CATALOG_DEPTH = 64
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


async def fetch_catalog_page(
    http: httpx.AsyncClient, tokens: TokenIssuer, url: str, did: str
) -> tuple[dict[str, Any], str | None]:
    """POST a signed CatalogRequestMessage to `url`; the catalog and its `rel="next"` URL."""
    response = await capped_request(
        http,
        "POST",
        url,
        what="catalog request",
        json=CATALOG_REQUEST,
        headers={"Authorization": f"Bearer {tokens.issue(did)}"},
    )
    if response.status != 200:
        raise UpstreamError(
            f"catalog request refused with HTTP {response.status}: {response.text[:300]}",
            url=url,
        )
    try:
        result: dict[str, Any] = orjson.loads(response.body)  # orjson stops at depth 1024
    except ValueError:
        raise UpstreamError("catalog response is not JSON", url=url) from None
    if not isinstance(result, dict):
        raise UpstreamError("catalog response is not a JSON object", url=url)
    if deeper_than(result, MAX_CATALOG_DEPTH):  # we answer it as JSON (json.dumps recurses)
        raise UpstreamError(f"catalog nested more than {MAX_CATALOG_DEPTH} levels deep", url=url)
    match = _NEXT.search(response.headers.get("link", ""))
    return result, match.group(1) if match else None


async def fetch_catalog(
    http: httpx.AsyncClient, tokens: TokenIssuer, address: str, did: str, *, max_pages: int = 1000
) -> dict[str, Any]:
    """The whole DSP catalog at `address` (a DSP base URL), following `Link` pages."""
    url: str | None = join_url(address, "catalog", "request")
    first: dict[str, Any] | None = None
    datasets: list[Any] = []
    for _ in range(max_pages):
        if url is None:
            break
        page, url = await fetch_catalog_page(http, tokens, url, did)
        if url is not None and urlsplit(url)[:2] != urlsplit(address)[:2]:
            # The next link is the peer's to write: never follow it to another origin.
            raise UpstreamError(f"catalog paging leads to another origin: {url}", url=address)
        first = first or page
        items = page.get("dataset", [])
        datasets += items if isinstance(items, list) else [items]
    if first is None:
        raise UpstreamError("catalog request returned nothing", url=address)
    return {**first, "dataset": datasets}


async def fetch_data_plane_token(
    http: httpx.AsyncClient, tokens: TokenIssuer, url: str, did: str
) -> tuple[str, int | None]:
    """POST our self-issued token (with our credentials) to a provider's ``refreshEndpoint``:
    the fresh data plane token and its ``expiresIn``. A provider that refuses under the
    agreement's policy (403) is a ``PolicyViolationError`` carrying its reason."""
    response = await capped_request(
        http,
        "POST",
        url,
        what="data plane token refresh",
        headers={"Authorization": f"Bearer {tokens.issue(did)}"},
    )
    try:
        parsed = orjson.loads(response.body) if response.body else None
    except ValueError:
        parsed = None
    answer: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    if response.status == 403:
        reason = answer.get("detail")
        raise PolicyViolationError(
            f"the provider refused a fresh token: {reason or response.text[:300]}"
        )
    if response.status != 200:
        raise UpstreamError(
            f"token refresh refused with HTTP {response.status}: {response.text[:300]}", url=url
        )
    token = answer.get("authorization")
    if not isinstance(token, str) or not token:
        raise UpstreamError("token refresh answer has no authorization", url=url)
    expires_in = answer.get("expiresIn")
    if not (isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in >= 0):
        expires_in = None
    return token, expires_in
