"""The ``QueryChannel`` of a data user's connector: a query to a hospital goes through the
hospital's data plane under the aggregate agreement, as every pull does (``DataPuller``).

For each agreement it uses a STARTED ``FHIR-Aggregate-PULL`` transfer this connector holds as
consumer; when there is none it starts one (``TransferService.request``) and waits until the
hospital has started it, up to ``start_seconds``. The pull refreshes the data plane token
when needed. The hospital's answer maps onto the coordinator's statuses::

    200                                   the answer (a MeasureReport, or a share)
    403, a refused transfer or token      QueryRefused        "refused"
    429                                   BudgetExhausted     "budget-exhausted"
    502, 504, no connection               HospitalUnreachable "unreachable"
    503 with Retry-After                  asked again after it (the hospital is preparing
                                          the data; the coordinator's timeout still applies)
    no agreement                          NoAgreement         "no-agreement"
    anything else                         HospitalFailure     "failed", with the status and
                                                              the hospital's detail
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

import orjson

from catalog.formats import Format
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.errors import NotFoundError, PhemsError
from connector.exchange.pull import PulledData
from connector.federation.ports import (
    BudgetExhausted,
    Hospital,
    HospitalFailure,
    HospitalReply,
    HospitalUnreachable,
    NoAgreement,
    QueryRefused,
)

FORMAT = Format.AGGREGATE.value
MAX_ANSWER_BYTES = 10 * 1024 * 1024
MAX_RETRY_WAIT = 5.0  # a hospital's Retry-After is honoured up to this (seconds) a time


class Transfers(Protocol):
    """What ``connector.exchange.transfers.TransferService`` offers."""

    async def request(self, *, agreement_id: str, format: str) -> Transfer: ...

    async def list(self, *, role: Role | None = None) -> list[Transfer]: ...

    async def get_local(self, id: str) -> Transfer: ...


class Puller(Protocol):
    """What ``connector.exchange.pull.DataPuller`` offers."""

    async def pull(
        self, tid: str, *, body: bytes, media_type: str | None, params: dict[str, str]
    ) -> PulledData: ...


def _failure(status: int, detail: str) -> HospitalFailure:
    if status in (401, 403):
        return QueryRefused(detail)
    if status == 429:
        return BudgetExhausted(detail)
    if status in (502, 503, 504):
        return HospitalUnreachable(detail)
    return HospitalFailure(f"HTTP {status}: {detail}")


def _problem(body: bytes) -> str:
    """The hospital's ``detail`` (problem+json), else the start of its answer."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    text = detail if isinstance(detail, str) else body[:200].decode(errors="replace")
    return " ".join(text.split())[:500] or "no detail"


class DataPlaneChannel:
    def __init__(
        self,
        *,
        transfers: Transfers,
        puller: Puller,
        start_seconds: float = 30.0,
        poll_seconds: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._transfers = transfers
        self._puller = puller
        self._start_seconds = start_seconds
        self._poll_seconds = poll_seconds
        self._monotonic = monotonic
        self._sleep = sleep
        self._started: dict[str, str] = {}  # agreement id -> a transfer STARTED under it
        self._starting: dict[str, asyncio.Lock] = {}

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        if hospital.agreement_id is None:
            raise NoAgreement(
                f"this connector holds no aggregate agreement with {hospital.did}: negotiate "
                "one for a dataset it offers for aggregate queries first"
            )
        tid = await self.transfer(hospital.agreement_id)
        while True:
            try:
                pulled = await self._puller.pull(
                    tid, body=body, media_type="application/json", params={}
                )
                answer = await _read(pulled)
            except PhemsError as exc:  # ours: a refused token, the hospital not reached, ...
                self._started.pop(hospital.agreement_id, None)
                raise _failure(exc.status, exc.detail) from None
            if pulled.status == 200:
                return HospitalReply(answer, pulled.headers.get("content-type", "application/json"))
            wait = pulled.headers.get("retry-after", "")
            if pulled.status == 503 and wait.isdigit():  # the hospital is preparing the data
                await self._sleep(min(float(wait), MAX_RETRY_WAIT))
                continue
            raise _failure(pulled.status, _problem(answer))

    async def transfer(self, agreement_id: str) -> str:
        """A STARTED aggregate transfer under the agreement: one we have, or a new one."""
        known = self._started.get(agreement_id)
        if known is not None and (await self._transfers.get_local(known)).state is _STARTED:
            return known
        lock = self._starting.setdefault(agreement_id, asyncio.Lock())
        async with lock:  # concurrent queries to one hospital start one transfer
            ours = [
                t
                for t in await self._transfers.list(role=Role.CONSUMER)
                if t.agreement_id == agreement_id and t.format == FORMAT
            ]
            started = [t for t in ours if t.state is _STARTED]
            if started:
                tid = max(started, key=lambda t: t.updated_at).id
            else:
                waiting = [t for t in ours if t.state is TransferState.REQUESTED]
                t = waiting[-1] if waiting else await self._request(agreement_id)
                tid = await self._until_started(t)
            self._started[agreement_id] = tid
            return tid

    async def _request(self, agreement_id: str) -> Transfer:
        try:
            return await self._transfers.request(agreement_id=agreement_id, format=FORMAT)
        except NotFoundError:
            raise NoAgreement(
                f"no agreement {agreement_id} with this connector as consumer"
            ) from None
        except PhemsError as exc:
            raise _failure(exc.status, f"cannot start a transfer: {exc.detail}") from None

    async def _until_started(self, t: Transfer) -> str:
        deadline = self._monotonic() + self._start_seconds
        while t.state is not _STARTED:
            if t.state in (TransferState.TERMINATED, TransferState.COMPLETED):
                reason = "; ".join(t.reason) or "no reason given"
                raise QueryRefused(f"the hospital did not start a transfer ({t.state}): {reason}")
            if self._monotonic() > deadline:
                raise HospitalUnreachable(
                    f"the hospital did not start the transfer {t.id} within "
                    f"{self._start_seconds:g} s"
                )
            await self._sleep(self._poll_seconds)
            t = await self._transfers.get_local(t.id)
        return t.id


_STARTED = TransferState.STARTED


async def _read(pulled: PulledData) -> bytes:
    body = bytearray()
    async for chunk in pulled.chunks:
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            if isinstance(pulled.chunks, AsyncGenerator):
                await pulled.chunks.aclose()
            raise HospitalFailure(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
    return bytes(body)
