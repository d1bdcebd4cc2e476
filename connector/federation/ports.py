"""What the federated query coordinator needs from the rest of the connector.

- ``HospitalDirectory``: which hospitals to ask (the aggregate agreements this connector holds
  as consumer, or the hospitals a user names).
- ``QueryChannel``: send one query body to one hospital under its agreement and return the
  answer. The real one goes through the data plane seam (a STARTED ``FHIR-Aggregate-PULL``
  transfer under the agreement, started when missing, its token refreshed when needed; a
  negotiation first where the directory found no agreement); tests use a fake.
- ``CellCodec``: the aggregate fulfilment's view of an answer as an ordered vector of cells
  (the layout comes from the query alone, so every hospital computes the same one), and a
  MeasureReport rebuilt from a vector.

A channel reports a hospital that cannot answer by raising one of the ``HospitalFailure``
classes below; the coordinator records it as that hospital's status and goes on with the
others::

    HospitalFailure            "failed"            anything else (an unusable answer, a 5xx)
    ├── QueryRefused           "refused"           403: the policy, or a refused negotiation
    ├── BudgetExhausted        "budget-exhausted"  429: epsilon budget, query count or rate
    ├── HospitalUnreachable    "unreachable"       connection refused, reset, DNS, 502-504
    └── NoAgreement            "no-agreement"      named, but no aggregate agreement to use
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Hospital:
    """One hospital to ask: its connector's DID and, when this connector holds one, the
    aggregate agreement (and its dataset) to ask under. ``label`` is what people read."""

    did: str
    agreement_id: str | None = None
    dataset_id: str | None = None
    address: str | None = None
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.did


@dataclass(frozen=True)
class HospitalReply:
    """A hospital's answer: the body as it came and its media type."""

    body: bytes
    media_type: str = "application/json"


class HospitalFailure(Exception):
    """A hospital could not answer; ``detail`` says why in words a user can act on (never a
    value computed from patient data)."""

    status = "failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class QueryRefused(HospitalFailure):
    status = "refused"


class BudgetExhausted(HospitalFailure):
    status = "budget-exhausted"


class HospitalUnreachable(HospitalFailure):
    status = "unreachable"


class NoAgreement(HospitalFailure):
    status = "no-agreement"


class HospitalDirectory(Protocol):
    async def hospitals(self, named: Sequence[str] = ()) -> list[Hospital]:
        """Every hospital with an aggregate agreement this connector holds as consumer; or,
        when ``named`` (DIDs or agreement ids) is given, those hospitals, each once (one
        without an agreement has ``agreement_id`` None: the coordinator's negotiator gets
        one, or the channel raises ``NoAgreement``). ``BadRequestError`` when a name is
        ambiguous (two aggregate agreements with one hospital: name the agreement)."""
        ...


class AgreementNegotiator(Protocol):
    async def agreement(self, did: str) -> Hospital:
        """Negotiate an aggregate agreement with the hospital (its ``agreement_id`` set), or
        raise a ``HospitalFailure`` saying why there is none (nothing to negotiate, refused,
        unreachable). Cancelled on the coordinator's per-hospital timeout."""
        ...


class QueryChannel(Protocol):
    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        """POST ``body`` (JSON) to the hospital's data plane under its agreement and return
        the answer; a ``HospitalFailure`` when it cannot. Cancelled on the coordinator's
        per-hospital timeout."""
        ...


class CellCodec(Protocol):
    def layout(self, query: Mapping[str, Any]) -> Sequence[str]:
        """The names of the answer's cells in order, computed from the query alone; the first
        is the cohort's patient count (the total the threshold rules read).
        ``BadRequestError`` naming the bad part when the query is invalid."""
        ...

    def cells(self, query: Mapping[str, Any], report: Mapping[str, Any]) -> Sequence[int | None]:
        """A hospital's MeasureReport (plain mode) as a vector in layout order, None for a
        cell it suppressed; ``ValueError`` when the report does not fit the query."""
        ...

    def report(self, query: Mapping[str, Any], cells: Sequence[int | None]) -> dict[str, Any]:
        """A MeasureReport for ``query`` from a vector in layout order (summed over
        hospitals; None for a cell not shown), the codec's rules for presenting cells
        applied (rounding, no negative counts)."""
        ...
