"""Calls to other connectors made on an operator's request (not DSP state changes, which go
through the outbox): fetching a counterparty's DSP catalog."""

from __future__ import annotations

from typing import Any

import httpx

from connector.composition import Services
from connector.dsp.urls import join_url
from connector.errors import UpstreamError


async def fetch_catalog(services: Services, address: str, did: str) -> dict[str, Any]:
    url = join_url(address, "catalog", "request")
    body = {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
        "@type": "CatalogRequestMessage",
    }
    try:
        response = await services.http.post(
            url, json=body, headers={"Authorization": f"Bearer {services.tokens.issue(did)}"}
        )
    except httpx.HTTPError as exc:
        raise UpstreamError(f"catalog request failed: {exc}", url=url) from None
    if response.status_code != 200:
        raise UpstreamError(
            f"catalog request refused with HTTP {response.status_code}: {response.text[:300]}",
            url=url,
        )
    try:
        result: dict[str, Any] = response.json()
    except ValueError:
        raise UpstreamError("catalog response is not JSON", url=url) from None
    return result
