"""Consumer side: pull a transfer's data from the provider's data plane, for the data user.

The data user asks their own connector (``POST /management/transfers/{id}/data``); it sends
the request to the endpoint of the transfer's DataAddress with the data plane token it holds,
fetching a fresh one from the provider's ``refreshEndpoint`` first when that token is about
to expire (or once more when the provider answers 401), and streams the provider's answer
back unchanged. The endpoint must be on a host the provider controls (the rule for callback
addresses), since the token and the data user's request go there.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.errors import ConflictError, InvalidMessageError, UpstreamError
from connector.exchange.callbacks import check_callback
from connector.exchange.remote import fetch_data_plane_token
from connector.exchange.transfers import TransferService
from connector.identity.tokens import TokenIssuer
from connector.ports import Clock

REFRESH_BEFORE = timedelta(seconds=30)  # a token this close to its end is replaced first
PASSED_HEADERS = ("content-type", "retry-after", "content-disposition")


@dataclass
class PulledData:
    """The provider's answer: its status, the headers worth passing on, and the body."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


def _expires(token: str) -> datetime | None:
    """The ``exp`` of a JWT we were given (read, not verified: the provider verifies it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class DataPuller:
    def __init__(
        self,
        *,
        transfers: TransferService,
        http: httpx.AsyncClient,
        tokens: TokenIssuer,
        clock: Clock,
        timeout: httpx.Timeout,
    ) -> None:
        self.transfers = transfers
        self.http = http
        self.tokens = tokens
        self.clock = clock
        self.timeout = timeout

    async def pull(
        self, tid: str, *, body: bytes, media_type: str | None, params: Mapping[str, str]
    ) -> PulledData:
        t, endpoint, token = await self._address(tid)
        expires = _expires(token)
        if expires is None or expires - self.clock.now() < REFRESH_BEFORE:
            token = await self._refresh(tid)
        response = await self._send(endpoint, token, body, media_type, params)
        if response.status_code == 401:
            await response.aclose()
            token = await self._refresh(tid)
            response = await self._send(endpoint, token, body, media_type, params)
        headers = {k: v for k, v in response.headers.items() if k.lower() in PASSED_HEADERS}
        return PulledData(response.status_code, headers, _stream(response))

    async def _address(self, tid: str) -> tuple[Transfer, str, str]:
        t = await self.transfers.get_local(tid)
        if t.role is not Role.CONSUMER:
            raise ConflictError(f"transfer {tid} is one we provide; its consumer pulls the data")
        if t.state is not TransferState.STARTED:
            raise ConflictError(f"transfer {tid} is {t.state}, not STARTED")
        address = t.data_address
        endpoint = address.endpoint if address else None
        token = address.get_property("authorization") if address else None
        if not endpoint or not token:
            raise ConflictError(f"the provider's DataAddress for {tid} has no endpoint or token")
        try:
            await check_callback(
                t.counterparty_did,
                endpoint,
                self.transfers.me.insecure_hosts,
                self.transfers.me.resolver,
                what="the provider's data endpoint",
            )
        except InvalidMessageError as exc:
            raise UpstreamError(exc.detail, url=endpoint) from None
        return t, endpoint, token

    async def _refresh(self, tid: str) -> str:
        t, refresh = await self.transfers.refresh_endpoint(tid)
        token, expires_in = await fetch_data_plane_token(
            self.http, self.tokens, refresh, t.counterparty_did
        )
        await self.transfers.record_token(tid, token, expires_in)
        return token

    async def _send(
        self,
        endpoint: str,
        token: str,
        body: bytes,
        media_type: str | None,
        params: Mapping[str, str],
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if media_type:
            headers["Content-Type"] = media_type
        request = self.http.build_request(
            "POST",
            endpoint,
            content=body,
            headers=headers,
            params=dict(params),
            timeout=self.timeout,
        )
        try:
            return await self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"the provider's data plane could not be reached: {type(exc).__name__}",
                url=endpoint,
            ) from None


async def _stream(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    finally:
        await response.aclose()
