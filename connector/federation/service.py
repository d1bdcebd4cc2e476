"""``POST /management/queries``: what the management route calls, its body and its answer.

The route (in ``connector/api/management.py``) stays a few lines::

    @router.post("/queries", **answers(QueryAnswerOut, {400: "...", 409: "..."}))
    async def run_query(body: QueryIn, services: ServicesDep) -> dict[str, Any]:
        return await services.queries.run(body, actor=ACTOR)

A hospital that cannot answer never makes the call fail: its status is in the answer, and
``status`` says whether every hospital, some or none contributed. A query that cannot run at
all (invalid, no hospital to ask, a hospital named twice) is a 400 naming the reason.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from connector.federation.coordinator import FederatedQueries
from connector.federation.secure import query_digest


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class QueryIn(_Model):
    """A federated query: the aggregate query (a CCDL cohort and the measures wanted, as the
    hospitals' aggregate fulfilment reads it), plain or secure, to every hospital this
    connector holds an aggregate agreement with, or to those named."""

    query: dict[str, Any] = Field(
        description="The aggregate query body each hospital receives (CCDL cohort + measures)."
    )
    mode: Literal["plain", "secure"] = Field(
        "plain",
        description="secure: hospitals answer masked vectors and only their sum is learned.",
    )
    hospitals: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Hospital DIDs or agreement ids; empty: every aggregate agreement held.",
    )
    timeout_seconds: float | None = Field(
        None,
        alias="timeoutSeconds",
        gt=0,
        le=3600,
        description="How long to wait for each hospital (default: the connector's setting).",
    )


class HospitalStatusOut(_Model):
    did: str
    label: str
    agreement_id: str | None = Field(alias="agreementId")
    dataset_id: str | None = Field(alias="datasetId")
    status: str = Field(
        description="answered, refused, budget-exhausted, unreachable, no-agreement, timeout, "
        "malformed, too-few-left or failed"
    )
    detail: str
    seconds: float | None
    rounds: int


class BreakdownOut(_Model):
    did: str
    label: str
    measure_report: dict[str, Any] = Field(alias="measureReport")


class QueryAnswerOut(_Model):
    """The combined answer of a federated query."""

    mode: Literal["plain", "secure"]
    status: Literal["complete", "partial", "failed"]
    rounds: int
    total: int | None = Field(description="The patient count over all hospitals, if shown.")
    withheld: str | None = Field(description="Why no count is shown (the threshold rules).")
    hospitals: list[HospitalStatusOut]
    measure_report: dict[str, Any] | None = Field(alias="measureReport")
    breakdown: list[BreakdownOut]
    suppressed: dict[str, int] = Field(
        description="Plain mode: cells some hospitals suppressed (counted 0 there), and by how "
        "many."
    )


class Auditor(Protocol):
    async def append(
        self, *, actor: str, event: str, details: dict[str, Any] | None = None
    ) -> None: ...


class QueryService:
    """Runs a federated query and records it in the audit log (which hospitals, their
    statuses and the query's digest; never a count)."""

    def __init__(self, queries: FederatedQueries, audit: Auditor) -> None:
        self.queries = queries
        self._audit = audit

    async def run(self, body: QueryIn, *, actor: str) -> dict[str, Any]:
        answer = await self.queries.run(
            body.query,
            mode=body.mode,
            hospitals=body.hospitals,
            timeout_seconds=body.timeout_seconds,
        )
        await self._audit.append(
            actor=actor,
            event="query.federated",
            details={
                "queryDigest": query_digest(body.query),
                "mode": answer.mode,
                "status": answer.status,
                "rounds": answer.rounds,
                "hospitals": [
                    {
                        "did": o.hospital.did,
                        "agreementId": o.hospital.agreement_id,
                        "status": o.status,
                    }
                    for o in answer.hospitals
                ],
            },
        )
        return answer.as_json()
