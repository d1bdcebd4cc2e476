"""The federated query coordinator (data user's connector): one query, many hospitals.

Each hospital is asked concurrently under its agreement, with a timeout; its status (answered,
refused, budget exhausted, unreachable, timeout, malformed answer, ...) is part of the answer.

Plain mode: every hospital answers its own disclosure-controlled MeasureReport; the cells are
summed (a cell a hospital suppressed counts 0 there and is reported as suppressed by that
many hospitals), and a per-hospital breakdown is kept when the rules allow it.

Secure mode (``connector.federation.secure``): every hospital answers a masked vector; the sum
is the only thing learned. A hospital that fails in a round (no answer in time, a refusal, a
malformed share) is excluded and the round runs again without it, with a new session, until a
round completes or fewer than two hospitals are left. The answer names every excluded hospital
and why, and how many rounds it took.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from connector.errors import BadRequestError
from connector.federation.ports import (
    AgreementNegotiator,
    CellCodec,
    Hospital,
    HospitalDirectory,
    HospitalFailure,
    QueryChannel,
)
from connector.federation.rules import CombinationRules
from connector.federation.secure import (
    DEFAULT_MODULUS,
    MIN_PARTICIPANTS,
    SecureAggregationError,
    Session,
    query_digest,
    unmask_sum,
)
from connector.federation.wire import MEMBER, read_share, with_session
from connector.settings import Settings

Mode = Literal["plain", "secure"]
ANSWER_EXTENSION = "https://w3id.org/phems/fhir/StructureDefinition/federated-answer"
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass
class HospitalOutcome:
    """What happened with one hospital. ``status`` is ``answered`` or a failure status
    (``ports.HospitalFailure.status``, ``timeout``, ``malformed``, ``too-few-left``)."""

    hospital: Hospital
    status: str = "pending"
    detail: str = ""
    seconds: float | None = None
    rounds: int = 0
    report: dict[str, Any] | None = None
    total: int | None = None

    @property
    def answered(self) -> bool:
        return self.status == "answered"

    def as_json(self) -> dict[str, Any]:
        return {
            "did": self.hospital.did,
            "label": self.hospital.name,
            "agreementId": self.hospital.agreement_id,
            "datasetId": self.hospital.dataset_id,
            "status": self.status,
            "detail": self.detail,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "rounds": self.rounds,
        }


@dataclass
class FederatedAnswer:
    """The combined answer. ``status``: ``complete`` (every hospital contributed),
    ``partial`` (some did) or ``failed`` (none did). ``withheld`` says why no count is shown
    (the rules), ``report`` is the combined MeasureReport (None only when nothing answered),
    ``breakdown`` the hospitals whose own reports are shown beside it."""

    mode: Mode
    status: Literal["complete", "partial", "failed"]
    hospitals: list[HospitalOutcome]
    rounds: int
    total: int | None = None
    withheld: str | None = None
    report: dict[str, Any] | None = None
    breakdown: list[HospitalOutcome] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "status": self.status,
            "rounds": self.rounds,
            "total": self.total,
            "withheld": self.withheld,
            "hospitals": [h.as_json() for h in self.hospitals],
            "measureReport": self.report,
            "breakdown": [
                {"did": h.hospital.did, "label": h.hospital.name, "measureReport": h.report}
                for h in self.breakdown
            ],
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class CoordinatorConfig:
    rules: CombinationRules = CombinationRules()
    timeout_seconds: float = 60.0
    modulus: int = DEFAULT_MODULUS
    concurrency: int = 16

    @classmethod
    def from_settings(cls, settings: Settings) -> CoordinatorConfig:
        return cls(
            rules=CombinationRules(
                min_total=settings.query_min_total,
                breakdown_min_hospitals=settings.query_breakdown_min_hospitals,
                breakdown_min_each=settings.query_breakdown_min_each,
            ),
            timeout_seconds=settings.query_timeout_seconds,
        )


class FederatedQueries:
    """Runs federated queries over the ports; ``run`` never raises for one hospital's
    failure, only for a query or a choice of hospitals that cannot run at all
    (``BadRequestError``)."""

    def __init__(
        self,
        *,
        directory: HospitalDirectory,
        channel: QueryChannel,
        codec: CellCodec,
        negotiator: AgreementNegotiator | None = None,
        config: CoordinatorConfig | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        new_session_id: Callable[[], str] = lambda: uuid.uuid4().urn,
    ) -> None:
        self._directory = directory
        self._channel = channel
        self._codec = codec
        self._negotiator = negotiator
        self.config = config or CoordinatorConfig()
        self._monotonic = monotonic
        self._new_session_id = new_session_id
        self._slots = asyncio.Semaphore(self.config.concurrency)

    async def run(
        self,
        query: Mapping[str, Any],
        *,
        mode: Mode = "plain",
        hospitals: Sequence[str] = (),
        timeout_seconds: float | None = None,
    ) -> FederatedAnswer:
        if MEMBER in query:
            raise BadRequestError(f"query: {MEMBER} is set by the coordinator, not in a query")
        layout = tuple(self._codec.layout(query))
        if not layout:
            raise BadRequestError("query: its answer has no cells")
        chosen = await self._directory.hospitals(tuple(hospitals))
        if not chosen:
            raise BadRequestError(
                "no hospital to ask: this connector holds no aggregate agreement"
                + (" with the hospitals named" if hospitals else "")
            )
        dids = [h.did for h in chosen]
        if len(set(dids)) != len(dids):
            twice = sorted({d for d in dids if dids.count(d) > 1})
            raise BadRequestError(
                f"hospitals: {twice[0]} would be asked twice (two aggregate agreements); "
                "name the agreement to use"
            )
        timeout = timeout_seconds or self.config.timeout_seconds
        outcomes = [HospitalOutcome(h) for h in chosen]
        if self._negotiator is not None:
            await asyncio.gather(
                *(self._agree(o, timeout) for o in outcomes if o.hospital.agreement_id is None)
            )
        if mode == "secure":
            return await self._secure(query, layout, outcomes, timeout)
        return await self._plain(query, layout, outcomes, timeout)

    # -- asking ------------------------------------------------------------------------------

    async def _agree(self, outcome: HospitalOutcome, timeout: float) -> None:
        """Negotiate first where needed: an agreement for a hospital named without one, under
        the per-hospital timeout; a failure is that hospital's status."""
        assert self._negotiator is not None
        start = self._monotonic()
        try:
            async with asyncio.timeout(timeout):
                outcome.hospital = await self._negotiator.agreement(outcome.hospital.did)
        except TimeoutError:
            outcome.status = "timeout"
            outcome.detail = f"no agreement negotiated within {timeout:g} s"
        except HospitalFailure as exc:
            outcome.status, outcome.detail = exc.status, exc.detail
        finally:
            outcome.seconds = self._monotonic() - start

    async def _ask(self, outcome: HospitalOutcome, body: bytes, timeout: float) -> object | None:
        """The parsed JSON answer, or None with the outcome's failure recorded."""
        if outcome.status != "pending" and outcome.rounds == 0:  # no agreement to ask under
            return None
        async with self._slots:  # waiting for a slot is not the hospital's time
            start = self._monotonic()
            try:
                async with asyncio.timeout(timeout):
                    reply = await self._channel.ask(outcome.hospital, body)
            except TimeoutError:
                outcome.status, outcome.detail = "timeout", f"no answer within {timeout:g} s"
                return None
            except HospitalFailure as exc:
                outcome.status, outcome.detail = exc.status, exc.detail
                return None
            finally:
                outcome.seconds = self._monotonic() - start
        outcome.rounds += 1
        if len(reply.body) > MAX_BODY_BYTES:
            outcome.status, outcome.detail = "malformed", "the answer is too large"
            return None
        try:
            parsed: object = orjson.loads(reply.body)
            return parsed
        except orjson.JSONDecodeError:
            outcome.status, outcome.detail = "malformed", "the answer is not JSON"
            return None

    async def _ask_all(
        self, outcomes: Sequence[HospitalOutcome], body: bytes, timeout: float
    ) -> list[object | None]:
        return list(await asyncio.gather(*(self._ask(o, body, timeout) for o in outcomes)))

    # -- plain mode --------------------------------------------------------------------------

    async def _plain(
        self,
        query: Mapping[str, Any],
        layout: tuple[str, ...],
        outcomes: list[HospitalOutcome],
        timeout: float,
    ) -> FederatedAnswer:
        answers = await self._ask_all(outcomes, orjson.dumps(dict(query)), timeout)
        vectors: list[Sequence[int | None]] = []
        for outcome, answer in zip(outcomes, answers, strict=True):
            if answer is None:
                continue
            cells = self._plain_cells(query, layout, outcome, answer)
            if cells is not None:
                vectors.append(cells)
        answered = [o for o in outcomes if o.answered]
        if not answered:
            return FederatedAnswer("plain", "failed", outcomes, rounds=1)
        combined: list[int | None] = []
        suppressed: dict[str, int] = {}
        for name, column in zip(layout, zip(*vectors, strict=True), strict=True):
            shown = [v for v in column if v is not None]
            combined.append(sum(shown) if shown else None)
            if len(shown) < len(column):
                suppressed[name] = len(column) - len(shown)
        answer = self._finish("plain", query, layout, outcomes, combined, rounds=1)
        if answer.withheld is None:
            answer.suppressed = suppressed
        if answer.withheld is None and self.config.rules.breakdown([o.total for o in answered]):
            answer.breakdown = answered
        return answer

    def _plain_cells(
        self,
        query: Mapping[str, Any],
        layout: tuple[str, ...],
        outcome: HospitalOutcome,
        answer: object,
    ) -> Sequence[int | None] | None:
        if not isinstance(answer, dict) or answer.get("resourceType") != "MeasureReport":
            outcome.status, outcome.detail = "malformed", "the answer is not a MeasureReport"
            return None
        try:
            cells = list(self._codec.cells(query, answer))
        except ValueError as exc:
            outcome.status, outcome.detail = "malformed", f"the MeasureReport: {exc}"
            return None
        if len(cells) != len(layout) or any(c is not None and type(c) is not int for c in cells):
            outcome.status, outcome.detail = "malformed", "the MeasureReport does not fit the query"
            return None
        outcome.status, outcome.report, outcome.total = "answered", answer, cells[0]
        return cells

    # -- secure mode -------------------------------------------------------------------------

    async def _secure(
        self,
        query: Mapping[str, Any],
        layout: tuple[str, ...],
        outcomes: list[HospitalOutcome],
        timeout: float,
    ) -> FederatedAnswer:
        digest = query_digest(query)
        active = [o for o in outcomes if o.status == "pending"]
        rounds = 0
        while len(active) >= MIN_PARTICIPANTS:
            rounds += 1
            session = Session.open(
                self._new_session_id(),
                [o.hospital.did for o in active],
                layout,
                self.config.modulus,
            )
            body = orjson.dumps(with_session(query, session))
            answers = await self._ask_all(active, body, timeout)
            shares: list[list[int]] = []
            for outcome, answer in zip(active, answers, strict=True):
                if answer is None:
                    continue
                try:
                    share = read_share(
                        answer, session, participant=outcome.hospital.did, query=digest
                    )
                except SecureAggregationError as exc:
                    outcome.status, outcome.detail = "malformed", f"its share: {exc}"
                    continue
                shares.append(share.masked_vector)
                outcome.status = "answered"
            failed = [o for o in active if not o.answered]
            if not failed:
                total = unmask_sum(shares, session)
                return self._finish("secure", query, layout, outcomes, list(total), rounds)
            active = [o for o in active if o.answered]
            again = "; the round ran again without it" if len(active) >= MIN_PARTICIPANTS else ""
            for o in failed:
                o.detail = f"round {rounds}: {o.detail}{again}"

        for o in active:
            o.status = "too-few-left"
            o.detail = (
                f"answered, but secure aggregation needs {MIN_PARTICIPANTS} hospitals and the "
                "others failed: its share was not used"
            )
        return FederatedAnswer("secure", "failed", outcomes, rounds=rounds)

    # -- the combined answer -----------------------------------------------------------------

    def _finish(
        self,
        mode: Mode,
        query: Mapping[str, Any],
        layout: tuple[str, ...],
        outcomes: list[HospitalOutcome],
        combined: list[int | None],
        rounds: int,
    ) -> FederatedAnswer:
        total = combined[0]
        withheld = self.config.rules.withheld(total)
        shown = [None] * len(layout) if withheld else combined
        report = self._codec.report(query, shown)
        if not withheld:  # the count as the report presents it (rounded), not the raw sum
            total = self._codec.cells(query, report)[0]
        status: Literal["complete", "partial"] = (
            "complete" if all(o.answered for o in outcomes) else "partial"
        )
        answer = FederatedAnswer(
            mode,
            status,
            outcomes,
            rounds,
            total=None if withheld else total,
            withheld=withheld,
        )
        answer.report = with_extension(report, answer)
        return answer


def with_extension(report: dict[str, Any], answer: FederatedAnswer) -> dict[str, Any]:
    """The combined MeasureReport, saying how it was made: mode, rounds, contributing and
    excluded hospitals, and why a result is withheld."""
    parts: list[dict[str, Any]] = [
        {"url": "mode", "valueCode": answer.mode},
        {"url": "rounds", "valueInteger": answer.rounds},
    ]
    for o in answer.hospitals:
        if o.answered:
            parts.append({"url": "contributor", "valueString": o.hospital.did})
        else:
            parts.append(
                {"url": "excluded", "valueString": f"{o.hospital.did}: {o.status}: {o.detail}"}
            )
    if answer.withheld:
        parts.append({"url": "withheld", "valueString": answer.withheld})
    extension = [e for e in report.get("extension", []) if e.get("url") != ANSWER_EXTENSION]
    return {**report, "extension": [*extension, {"url": ANSWER_EXTENSION, "extension": parts}]}
