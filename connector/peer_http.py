"""Reading a peer connector's answer without trusting its size.

Another connector (or anything at a URL an operator typed) may answer with an endless body;
we read at most ``limit`` bytes and refuse the rest with an ``UpstreamError`` naming the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from connector.errors import UpstreamError

# A DSP catalog page or a dataset description is far below this.
MAX_PEER_BYTES = 16 << 20


@dataclass(frozen=True)
class PeerAnswer:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def capped_request(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    limit: int = MAX_PEER_BYTES,
    **kwargs: Any,
) -> PeerAnswer:
    """``method url`` and the answer's first ``limit`` bytes; ``UpstreamError`` (naming
    ``what`` and the URL) on a transport error or a longer body."""
    body = bytearray()
    try:
        async with http.stream(method, url, **kwargs) as response:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise UpstreamError(f"{what}: answer larger than {limit} bytes", url=url)
            return PeerAnswer(response.status_code, response.headers, bytes(body))
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{what} failed: {exc!r}", url=url) from None
