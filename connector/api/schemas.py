"""What the management API returns, as models for its OpenAPI description.

The routes build their JSON themselves (``negotiation_json`` and the ``as_json`` methods), so
these models document, they do not validate on the way out (FastAPI's response validation
costs about 60 us a response). The end-to-end tests check every management response against
the description, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connector.dsp.states import NegotiationState, TransferState

RoleName = Literal["provider", "consumer"]
SCOPE = (
    "Which part of the FHIR data the dataset covers: `resourceTypes`, `period` (`start`, "
    "`end`: dates) and `group` (a FHIR Group id); absent: all of it."
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetOut(_Out):
    id: str
    title: str
    description: str
    formats: list[str]
    offers: list[dict[str, Any]] = Field(description="ODRL offers, as the hospital wrote them.")
    metadata: dict[str, Any] = Field(
        description="HealthDCAT-AP metadata, with the statistics computed from the data."
    )
    scope: dict[str, Any] | None = Field(description=SCOPE)
    status: Literal["published", "retired"]
    createdAt: datetime
    modifiedAt: datetime = Field(
        description="Send it back with a PUT to guard against a lost update."
    )


class NegotiationOut(_Out):
    id: str = Field(description="This connector's process id (its pid on the wire).")
    role: RoleName
    state: NegotiationState
    providerPid: str | None
    consumerPid: str | None
    counterpartyId: str = Field(description="The counterparty's DID.")
    counterpartyAddress: str | None = Field(description="The counterparty's DSP base URL.")
    offer: dict[str, Any] | None
    agreement: dict[str, Any] | None = Field(
        description="Once AGREED: the ODRL Agreement, with the provider's signature."
    )
    providerSignature: str | None = Field(description="Compact JWS over the canonical Agreement.")
    consumerSignature: str | None = Field(description="Compact JWS over the canonical Agreement.")
    terminationReason: list[str]
    createdAt: datetime
    updatedAt: datetime


class EndpointPropertyOut(_Out):
    type: Literal["EndpointProperty"] = Field(alias="@type")
    name: str = Field(description="authorization, authType, expiresIn or refreshEndpoint.")
    value: str


class DataAddressOut(_Out):
    type: Literal["DataAddress"] = Field(alias="@type")
    endpointType: str
    endpoint: str | None = None
    endpointProperties: list[EndpointPropertyOut] = []


class TransferOut(_Out):
    id: str = Field(description="This connector's process id (its pid on the wire).")
    role: RoleName
    state: TransferState
    providerPid: str | None
    consumerPid: str | None
    agreementId: str | None
    format: str | None = Field(description="FHIR-Aggregate-PULL, FHIR-Synthetic-PULL, ...")
    counterpartyId: str = Field(description="The counterparty's DID.")
    dataAddress: DataAddressOut | None = Field(
        description="Once STARTED: the data plane endpoint and its bearer token."
    )
    reason: list[str]
    createdAt: datetime
    updatedAt: datetime


class AgreementOut(_Out):
    id: str
    negotiationId: str
    role: RoleName
    datasetId: str | None
    providerDid: str
    consumerDid: str
    agreement: dict[str, Any] = Field(description="The ODRL Agreement as signed.")
    providerSignature: str | None
    consumerSignature: str | None
    uses: int = Field(description="Transfers started under it.")
    epsilonSpent: float = Field(description="Privacy budget spent under it.")
    createdAt: datetime


class AgreementProofOut(_Out):
    """An agreement with both signatures and both parties' DID documents:
    ``phems-connector agreements verify FILE`` checks it offline."""

    type: Literal["https://w3id.org/phems/ns/AgreementProof"]
    agreement: dict[str, Any]
    providerSignature: str
    consumerSignature: str
    providerDidDocument: dict[str, Any]
    consumerDidDocument: dict[str, Any]


class HarvestTargetOut(_Out):
    address: str = Field(description="The connector's DSP base URL.")
    state: Literal["pending", "running", "ok", "failed"]
    providerDid: str | None
    error: str | None = Field(description="Why the harvest of this connector failed.")
    datasets: int
    new: int
    updated: int
    unchanged: int
    removed: int


class HarvestRunOut(_Out):
    startedAt: datetime
    finishedAt: datetime | None
    progress: str = Field(description="Targets done / targets, e.g. 2/3.")
    targets: list[HarvestTargetOut]


class HarvestedDatasetOut(_Out):
    provider: str = Field(description="The provider's DID.")
    providerAddress: str = Field(description="The provider's DSP base URL.")
    publisher: str
    id: str
    title: str
    description: str
    keywords: list[str]
    outputTypes: list[str] = Field(description="aggregate, synthetic, anonymized")
    formats: list[str] = Field(description="DSP transfer formats, e.g. FHIR-Aggregate-PULL")
    individuals: int | None = Field(description="Number of unique individuals (rounded).")
    minAge: int | None
    maxAge: int | None
    temporalStart: str | None
    temporalEnd: str | None
    offers: list[dict[str, Any]] = Field(description="The ODRL offers the provider showed us.")


class JobOut(_Out):
    id: str
    kind: str = Field(description="view-cache, dataset-statistics, synthetic-fit, ...")
    key: str
    state: Literal["queued", "running", "done", "failed"]
    stage: str
    percent: float
    attempts: int
    createdAt: datetime
    updatedAt: datetime
    finishedAt: datetime | None
    result: dict[str, Any] | None
    error: str | None = Field(description="Why the last attempt failed (for the operator).")


class OptOutOut(_Out):
    patientId: str
    addedAt: datetime
    addedBy: str


class OptOutChangeOut(_Out):
    changed: list[str] = Field(description="The ids added (or removed) by this call.")
    total: int = Field(description="Opted-out patients on the list now.")
