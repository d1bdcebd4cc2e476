"""The data user's query channel over its transfers: a STARTED aggregate transfer is reused,
one is started and waited for when there is none, and every way a hospital can fail maps to
the coordinator's statuses. The transfers and the puller are fakes of their ports (the real
ones run in tests/e2e/test_federated_queries.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.errors import ConflictError, NotFoundError, PolicyViolationError, UpstreamError
from connector.exchange.pull import PulledData
from connector.federation.channel import FORMAT, DataPlaneChannel
from connector.federation.ports import (
    BudgetExhausted,
    Hospital,
    HospitalFailure,
    HospitalUnreachable,
    NoAgreement,
    QueryRefused,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOSPITAL = Hospital("did:web:h.example", agreement_id="ag-1", dataset_id="ds")


def transfer(id: str, state: TransferState, agreement: str = "ag-1", fmt: str = FORMAT) -> Transfer:
    t = Transfer.new(id=id, role=Role.CONSUMER, counterparty_did=HOSPITAL.did, now=T0)
    return replace(t, state=state, agreement_id=agreement, format=fmt)


@dataclass
class Transfers:
    """Transfers as the store holds them; a requested one starts (or is terminated) after
    ``polls_to_start`` looks at it."""

    held: dict[str, Transfer] = field(default_factory=dict)
    polls_to_start: int = 2
    outcome: TransferState = TransferState.STARTED
    requested: list[str] = field(default_factory=list)
    refuse: Exception | None = None

    async def request(self, *, agreement_id: str, format: str) -> Transfer:
        if self.refuse is not None:
            raise self.refuse
        t = transfer(f"t{len(self.held)}", TransferState.REQUESTED, agreement_id, format)
        self.held[t.id] = t
        self.requested.append(t.id)
        return t

    async def list(self, *, role: Role | None = None) -> list[Transfer]:
        return list(self.held.values())

    async def get_local(self, id: str) -> Transfer:
        t = self.held[id]
        if t.state is TransferState.REQUESTED:
            self.polls_to_start -= 1
            if self.polls_to_start <= 0:
                t = self.held[id] = replace(
                    t, state=self.outcome, reason=("not offered for this format",)
                )
        return t


@dataclass
class Puller:
    """Answers each pull with the next of ``answers`` (status, headers, body), or raises it."""

    answers: list[tuple[int, dict[str, str], bytes] | Exception]
    pulled: list[tuple[str, bytes]] = field(default_factory=list)

    async def pull(
        self, tid: str, *, body: bytes, media_type: str | None, params: dict[str, str]
    ) -> PulledData:
        assert media_type == "application/json" and params == {}
        self.pulled.append((tid, body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, headers, content = answer

        async def chunks() -> AsyncIterator[bytes]:
            yield content

        return PulledData(status, headers, chunks())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def channel(transfers: Transfers, puller: Puller, clock: Clock) -> DataPlaneChannel:
    return DataPlaneChannel(
        transfers=transfers,
        puller=puller,
        start_seconds=1.0,
        poll_seconds=0.1,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )


OK = (200, {"content-type": "application/fhir+json"}, b'{"resourceType": "MeasureReport"}')


async def test_a_started_transfer_is_used_and_kept() -> None:
    transfers = Transfers(
        {
            "old": replace(transfer("old", TransferState.STARTED), updated_at=T0),
            "other-format": transfer("other-format", TransferState.STARTED, fmt="x-PULL"),
            "other-agreement": transfer("other-agreement", TransferState.STARTED, "ag-2"),
            "new": replace(
                transfer("new", TransferState.STARTED), updated_at=T0 + timedelta(hours=1)
            ),
        }
    )
    puller = Puller([OK, OK])
    ch = channel(transfers, puller, Clock())
    reply = await ch.ask(HOSPITAL, b"{}")
    assert reply.body == OK[2] and reply.media_type == "application/fhir+json"
    await ch.ask(HOSPITAL, b'{"again": 1}')
    assert [tid for tid, _ in puller.pulled] == ["new", "new"] and transfers.requested == []


async def test_a_transfer_is_started_and_waited_for_when_there_is_none() -> None:
    transfers = Transfers({"done": transfer("done", TransferState.COMPLETED)}, polls_to_start=3)
    clock = Clock()
    puller = Puller([OK])
    await channel(transfers, puller, clock).ask(HOSPITAL, b"{}")
    assert transfers.requested == ["t1"] and puller.pulled[0][0] == "t1"
    assert clock.slept == [0.1, 0.1, 0.1]  # three looks until it is STARTED


@pytest.mark.parametrize(
    ("outcome", "polls", "failure", "words"),
    [
        (TransferState.TERMINATED, 1, QueryRefused, "did not start a transfer (TERMINATED): not"),
        (TransferState.STARTED, 100, HospitalUnreachable,
         "did not start the transfer t0 within 1 s"),
    ],
)  # fmt: skip
async def test_a_transfer_the_hospital_does_not_start(
    outcome: TransferState, polls: int, failure: type[HospitalFailure], words: str
) -> None:
    transfers = Transfers(polls_to_start=polls, outcome=outcome)
    with pytest.raises(failure, match=words.replace("(", r"\(").replace(")", r"\)")):
        await channel(transfers, Puller([]), Clock()).ask(HOSPITAL, b"{}")


async def test_no_agreement() -> None:
    ch = channel(
        Transfers(refuse=NotFoundError("no agreement ag-1 as consumer")), Puller([]), Clock()
    )
    with pytest.raises(NoAgreement, match="negotiate one"):
        await ch.ask(Hospital("did:web:x.example"), b"{}")
    with pytest.raises(NoAgreement, match="no agreement ag-1 with this connector"):
        await ch.ask(HOSPITAL, b"{}")
    ch = channel(Transfers(refuse=ConflictError("provider address unknown")), Puller([]), Clock())
    with pytest.raises(HospitalFailure, match="HTTP 409: cannot start a transfer: provider"):
        await ch.ask(HOSPITAL, b"{}")


def problem(status: int, detail: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    body = f'{{"type": "about:blank", "status": {status}, "detail": "{detail}"}}'.encode()
    return status, {"content-type": "application/problem+json", **headers}, body


@pytest.mark.parametrize(
    ("answer", "failure", "detail"),
    [
        (problem(403, "purpose: marketing is not research"), QueryRefused,
         "purpose: marketing is not research"),
        (problem(429, "the agreement's budget is used up"), BudgetExhausted,
         "the agreement's budget is used up"),
        (problem(502, "bad gateway"), HospitalUnreachable, "bad gateway"),
        ((504, {}, b"<html>gateway timeout</html>"), HospitalUnreachable,
         "<html>gateway timeout</html>"),
        (problem(400, "secureAggregation.layout: ..."), HospitalFailure,
         "HTTP 400: secureAggregation.layout: ..."),
        (problem(501, "no fulfilment"), HospitalFailure, "HTTP 501: no fulfilment"),
        (UpstreamError("the provider's data plane could not be reached: ConnectError"),
         HospitalUnreachable, "the provider's data plane could not be reached: ConnectError"),
        (PolicyViolationError("the provider refused a fresh token: expired"), QueryRefused,
         "the provider refused a fresh token: expired"),
        (ConflictError("transfer t is SUSPENDED, not STARTED"), HospitalFailure,
         "HTTP 409: transfer t is SUSPENDED, not STARTED"),
    ],
)  # fmt: skip
async def test_what_a_hospital_answers_maps_to_a_status(
    answer: tuple[int, dict[str, str], bytes] | Exception,
    failure: type[HospitalFailure],
    detail: str,
) -> None:
    transfers = Transfers({"t": transfer("t", TransferState.STARTED)})
    with pytest.raises(failure) as caught:
        await channel(transfers, Puller([answer]), Clock()).ask(HOSPITAL, b"{}")
    assert type(caught.value) is failure and caught.value.detail == detail


async def test_a_hospital_preparing_its_data_is_asked_again_after_its_retry_after() -> None:
    transfers = Transfers({"t": transfer("t", TransferState.STARTED)})
    clock = Clock()
    puller = Puller([problem(503, "preparing", **{"retry-after": "10"}), problem(503, "x"), OK])
    with pytest.raises(HospitalUnreachable, match="^x$"):  # no Retry-After: not asked again
        await channel(transfers, puller, clock).ask(HOSPITAL, b"{}")
    assert clock.slept == [5.0] and len(puller.pulled) == 2
    puller = Puller([problem(503, "preparing", **{"retry-after": "2"}), OK])
    assert (await channel(transfers, puller, clock).ask(HOSPITAL, b"{}")).body == OK[2]
