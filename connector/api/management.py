"""Management API (``/management``): datasets and offers, negotiations, agreements, transfers.

Authenticated with the management API key; errors are RFC 9457 problem+json.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from catalog.formats import Format, OutputType
from catalog.search import Query as SearchQuery
from connector.api.deps import AuthenticatedFirst, ManagementAuth, ServicesDep
from connector.api.schemas import (
    SCOPE,
    AgreementOut,
    AgreementProofOut,
    DatasetOut,
    HarvestedDatasetOut,
    HarvestRunOut,
    NegotiationOut,
    TransferOut,
)
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import Role
from connector.dsp.transfer import Transfer
from connector.dsp.urls import callback_address_problem
from connector.errors import BadRequestError, NotFoundError
from connector.exchange.remote import fetch_catalog, fetch_data_plane_token
from connector.identity.did import did_from_url
from connector.publishing.datasets import AsRead, DatasetDraft
from connector.publishing.records import DatasetRecord

router = APIRouter(
    prefix="/management",
    tags=["management"],
    dependencies=[ManagementAuth],
    route_class=AuthenticatedFirst,
)
ACTOR = "management-api"


def answers(
    model: Any, errors: dict[int, str] | None = None, *, status: int = 200
) -> dict[str, Any]:
    """Route arguments documenting what an operation returns (``model`` at ``status``) and the
    errors particular to it (the common ones are added by ``document_errors``). The routes
    build their JSON themselves, so ``model`` documents and does not validate."""
    responses: dict[int | str, dict[str, Any]] = {status: {"model": model}}
    responses.update({code: {"description": words} for code, words in (errors or {}).items()})
    return {"status_code": status, "response_model": None, "responses": responses}


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _default_formats() -> list[Format]:
    return [Format.AGGREGATE]


class DatasetIn(Model):
    id: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:~/-]+$")
    title: str = Field(min_length=1, max_length=512)
    description: str = ""
    formats: list[Format] = Field(default_factory=_default_formats, min_length=1)
    offers: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    scope: dict[str, Any] | None = Field(default=None, description=SCOPE)

    def draft(self) -> DatasetDraft:
        return DatasetDraft(
            id=self.id,
            title=self.title,
            description=self.description,
            formats=tuple(self.formats),
            offers=tuple(self.offers),
            metadata=self.metadata,
            scope=self.scope,
        )


class DatasetUpdateIn(DatasetIn):
    """A PUT body: a dataset as GET returns it. The read-only parts are checked, not applied."""

    status: Literal["published", "retired"] | None = None
    created_at: datetime | None = Field(default=None, alias="createdAt")
    modified_at: datetime | None = Field(default=None, alias="modifiedAt")


def _check_address(value: str) -> str:
    problem = callback_address_problem(value)
    if problem is not None:
        raise ValueError(problem.replace("callbackAddress", "counterpartyAddress"))
    return value


Address = Annotated[str, AfterValidator(_check_address)]


class NegotiationIn(Model):
    counterparty_address: Address = Field(alias="counterpartyAddress")
    counterparty_id: str | None = Field(default=None, alias="counterpartyId")
    offer: dict[str, Any]


class OfferIn(Model):
    counterparty_address: Address = Field(alias="counterpartyAddress")
    counterparty_id: str | None = Field(default=None, alias="counterpartyId")
    dataset_id: str = Field(alias="datasetId")
    offer_id: str = Field(alias="offerId")


class CatalogRequestIn(Model):
    counterparty_address: Address = Field(alias="counterpartyAddress")
    counterparty_id: str | None = Field(default=None, alias="counterpartyId")


class TransferIn(Model):
    agreement_id: str = Field(alias="agreementId")
    format: Format


class ReasonIn(Model):
    reason: str = Field(default="terminated by the operator", max_length=2000)


def counterparty_did(address: str, given: str | None) -> str:
    """The counterparty's DID: given, or the did:web of the address' origin."""
    if given:
        return given
    parts = urlsplit(address)
    return did_from_url(f"{parts.scheme}://{parts.netloc}")


def negotiation_json(n: Negotiation) -> dict[str, Any]:
    return {
        "id": n.id,
        "role": str(n.role),
        "state": str(n.state),
        "providerPid": n.provider_pid,
        "consumerPid": n.consumer_pid,
        "counterpartyId": n.counterparty_did,
        "counterpartyAddress": n.counterparty_address,
        "offer": n.offer,
        "agreement": n.agreement,
        "providerSignature": n.provider_signature,
        "consumerSignature": n.consumer_signature,
        "terminationReason": list(n.termination_reason),
        "createdAt": n.created_at.isoformat(),
        "updatedAt": n.updated_at.isoformat(),
    }


def transfer_json(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "role": str(t.role),
        "state": str(t.state),
        "providerPid": t.provider_pid,
        "consumerPid": t.consumer_pid,
        "agreementId": t.agreement_id,
        "format": t.format,
        "counterpartyId": t.counterparty_did,
        "dataAddress": t.data_address.model_dump(by_alias=True, exclude_none=True)
        if t.data_address
        else None,
        "reason": list(t.reason),
        "createdAt": t.created_at.isoformat(),
        "updatedAt": t.updated_at.isoformat(),
    }


# -- datasets ----------------------------------------------------------------------------


@router.post("/datasets", **answers(DatasetOut, {409: "A dataset with this id exists"}, status=201))
async def create_dataset(body: DatasetIn, services: ServicesDep) -> dict[str, Any]:
    """Publish a dataset: HealthDCAT-AP metadata (checked against the official SHACL
    shapes), transfer formats and ODRL offers (checked by the policy engine: an unknown
    operand is refused). The DSP catalog lists it to callers one of its offers' policies
    permits at catalog scope."""
    return (await services.datasets.create(body.draft(), actor=ACTOR)).as_json()


@router.get("/datasets", **answers(list[DatasetOut]))
async def list_datasets(
    services: ServicesDep, include_retired: bool = False
) -> list[dict[str, Any]]:
    """This connector's datasets, published ones only unless `include_retired`."""
    return [r.as_json() for r in await services.datasets.list(include_retired=include_retired)]


@router.get("/datasets/{dataset_id:path}", **answers(DatasetOut))
async def get_dataset(dataset_id: str, services: ServicesDep) -> dict[str, Any]:
    """One dataset as stored: what a PUT may send back, changed where wanted."""
    return (await services.datasets.get(dataset_id)).as_json()


@router.put(
    "/datasets/{dataset_id:path}",
    **answers(DatasetOut, {409: "`modifiedAt` is stale: the dataset changed since it was read"}),
)
async def update_dataset(
    dataset_id: str, body: DatasetUpdateIn, services: ServicesDep
) -> dict[str, Any]:
    """Replace a dataset's title, description, formats, offers and metadata.

    What GET returns may be sent back as it is, changed where wanted: its read-only parts
    (`status`, `createdAt`, `modifiedAt`, the statistics computed from the data) are accepted
    unchanged and refused changed. A `modifiedAt` is a precondition: if the dataset has changed
    since (an edit, a statistics refresh, a retirement), the answer is 409 and nothing is
    written. Without it, the change applies to the dataset as it is now."""
    as_read = AsRead(modified_at=body.modified_at, status=body.status, created_at=body.created_at)
    record = await services.datasets.update(dataset_id, body.draft(), as_read=as_read, actor=ACTOR)
    return record.as_json()


@router.post(
    "/datasets/{dataset_id:path}/refresh-statistics",
    **answers(
        DatasetOut,
        {
            202: "Still computing: the job (GET /management/jobs/{id} shows its progress)",
            409: "The computation failed (the reason named)",
        },
    ),
)
async def refresh_statistics(dataset_id: str, services: ServicesDep) -> JSONResponse:
    """Recompute the dataset's statistics from its data (its scope, opted-out patients
    removed; rounded, no small cells) as a job: the dataset once done (within
    ``PHEMS_DATAPLANE_WAIT_SECONDS``), else 202 with the job."""
    done = await services.datasets.refresh_statistics(
        dataset_id, actor=ACTOR, wait=services.settings.dataplane_wait_seconds
    )
    if isinstance(done, DatasetRecord):
        return JSONResponse(done.as_json())
    return JSONResponse(
        done.as_json(), status_code=202, headers={"Location": f"/management/jobs/{done.id}"}
    )


@router.post("/datasets/{dataset_id:path}/retire", **answers(DatasetOut))
async def retire_dataset(dataset_id: str, services: ServicesDep) -> dict[str, Any]:
    """Take a dataset out of the catalog. Existing agreements and transfers stay; no new
    negotiation can start for it."""
    return (await services.datasets.retire(dataset_id, actor=ACTOR)).as_json()


# -- a counterparty's catalog ------------------------------------------------------------


@router.post(
    "/catalog/request",
    responses={502: {"description": "The counterparty could not be reached or answered unusably"}},
)
async def request_catalog(body: CatalogRequestIn, services: ServicesDep) -> JSONResponse:
    """A counterparty's DSP catalog, asked by this connector with its self-issued token and
    credentials (so the counterparty shows what this connector may use)."""
    did = counterparty_did(body.counterparty_address, body.counterparty_id)
    return JSONResponse(
        await fetch_catalog(services.http, services.tokens, body.counterparty_address, did)
    )


# -- harvesting other connectors' catalogs ------------------------------------------------


class HarvestIn(Model):
    targets: list[str] | None = None  # DSP base URLs; default: the harvest_targets setting


@router.post("/harvest", **answers(HarvestRunOut))
async def harvest(services: ServicesDep, body: HarvestIn | None = None) -> dict[str, Any]:
    """Harvest the configured (or given) connectors now; the report names each failure."""
    targets = (body.targets if body else None) or services.harvest.targets
    if not targets:
        raise BadRequestError("no harvest targets: set PHEMS_HARVEST_TARGETS or give 'targets'")
    return (await services.harvest.harvest(targets)).as_json()


@router.get("/harvest", **answers(HarvestRunOut))
async def harvest_progress(services: ServicesDep) -> dict[str, Any]:
    """Progress of the running (or last) harvest."""
    run = services.harvest.last_run
    if run is None:
        raise NotFoundError("no harvest has run yet")
    return run.as_json()


@router.get("/harvest/datasets", **answers(list[HarvestedDatasetOut]))
async def search_harvested(
    services: ServicesDep,
    q: str = "",
    hospital: Annotated[list[str] | None, Query(description="Publisher name")] = None,
    output: Annotated[list[OutputType] | None, Query(description="Output type")] = None,
    min_age: Annotated[int | None, Query(ge=0)] = None,
    max_age: Annotated[int | None, Query(ge=0)] = None,
) -> list[dict[str, Any]]:
    """Search the harvested datasets (free text `q` in every word, as the catalogue does;
    each filter narrows), each with its provider and the offers it showed this connector."""
    query = SearchQuery(
        text=q,
        hospitals=frozenset(hospital or ()),
        output_types=frozenset(output or ()),
        min_age=min_age,
        max_age=max_age,
    )
    return [h.as_json() for h in await services.harvest.search(query)]


# -- negotiations --------------------------------------------------------------------------


# The two requests that start work return their JSON themselves: a returned dict goes through
# FastAPI's response validation and jsonable_encoder (about 60 us, for JSON-native values).
@router.post("/negotiations", **answers(NegotiationOut, status=201))
async def start_negotiation(body: NegotiationIn, services: ServicesDep) -> JSONResponse:
    """As consumer: ask a provider for a contract on one of its offers (the offer as its
    catalog gave it, with `target` = the dataset id). Answers at once, REQUESTED; the
    negotiation goes on between the connectors (GET it to follow its state to FINALIZED or
    TERMINATED)."""
    n = await services.negotiations.request(
        counterparty_address=body.counterparty_address,
        counterparty_did=counterparty_did(body.counterparty_address, body.counterparty_id),
        offer=body.offer,
    )
    return JSONResponse(negotiation_json(n), status_code=201)


@router.post("/negotiations/offers", **answers(NegotiationOut, status=201))
async def offer_to_consumer(body: OfferIn, services: ServicesDep) -> dict[str, Any]:
    """As provider: offer one of our datasets' offers to a consumer connector (a provider-
    initiated negotiation, OFFERED)."""
    n = await services.negotiations.offer(
        counterparty_address=body.counterparty_address,
        counterparty_did=counterparty_did(body.counterparty_address, body.counterparty_id),
        dataset_id=body.dataset_id,
        offer_id=body.offer_id,
    )
    return negotiation_json(n)


@router.get("/negotiations", **answers(list[NegotiationOut]))
async def list_negotiations(
    services: ServicesDep, role: Role | None = None, pending: bool = False
) -> list[dict[str, Any]]:
    """Negotiations of this connector, in either role; `pending` lists those waiting for a
    person's approval."""
    return [
        negotiation_json(n) for n in await services.negotiations.list(role=role, pending=pending)
    ]


@router.get("/negotiations/{nid}", **answers(NegotiationOut))
async def get_negotiation(nid: str, services: ServicesDep) -> dict[str, Any]:
    """One negotiation: its state, offer, agreement and both signatures once agreed, and the
    termination reason if it ended."""
    return negotiation_json(await services.negotiations.get_local(nid))


@router.post("/negotiations/{nid}/accept", **answers(NegotiationOut))
async def accept_offer(nid: str, services: ServicesDep) -> dict[str, Any]:
    """As consumer: accept a provider's offer (OFFERED to ACCEPTED)."""
    return negotiation_json(await services.negotiations.accept(nid))


@router.post(
    "/negotiations/{nid}/approve",
    **answers(NegotiationOut, {409: "The negotiation is not waiting for approval"}),
)
async def approve_negotiation(nid: str, services: ServicesDep) -> dict[str, Any]:
    """As provider: a person approves a request that its offer's policy holds for approval
    (`approvalRequired`); the connector then agrees and signs."""
    return negotiation_json(await services.negotiations.approve(nid, approver=ACTOR))


@router.post(
    "/negotiations/{nid}/terminate",
    **answers(
        NegotiationOut,
        {409: "The negotiation has already ended, or is not yet acknowledged by the counterparty"},
    ),
)
async def terminate_negotiation(nid: str, body: ReasonIn, services: ServicesDep) -> dict[str, Any]:
    """End a negotiation, from either side, with a reason the counterparty receives."""
    return negotiation_json(
        await services.negotiations.terminate(nid, reason=body.reason, actor=ACTOR)
    )


# -- agreements ----------------------------------------------------------------------------


@router.get("/agreements", **answers(list[AgreementOut]))
async def list_agreements(services: ServicesDep) -> list[dict[str, Any]]:
    """Agreements of this connector in either role, each with both signatures."""
    return [a.as_json() for a in await services.agreements.list()]


@router.get("/agreements/{aid}", **answers(AgreementOut))
async def get_agreement(aid: str, services: ServicesDep) -> dict[str, Any]:
    """One agreement with both signatures."""
    return (await services.agreements.get(aid)).as_json()


@router.get("/agreements/{aid}/export", **answers(AgreementProofOut))
async def export_agreement(aid: str, services: ServicesDep) -> dict[str, Any]:
    """The agreement with both signatures and both parties' DID documents, for
    ``phems-connector agreements verify FILE`` (offline)."""
    return await services.agreements.proof(aid)


# -- transfers -----------------------------------------------------------------------------


@router.post(
    "/transfers",
    **answers(
        TransferOut,
        {
            404: "No such agreement with this connector as consumer",
            409: "The agreement's provider address is unknown",
        },
        status=201,
    ),
)
async def start_transfer(body: TransferIn, services: ServicesDep) -> JSONResponse:
    """As consumer: start a transfer under an agreement, in one of the dataset's formats.
    Answers at once, REQUESTED; once STARTED, its `dataAddress` holds the endpoint and a
    bearer token."""
    t = await services.transfers.request(agreement_id=body.agreement_id, format=body.format)
    return JSONResponse(transfer_json(t), status_code=201)


@router.get("/transfers", **answers(list[TransferOut]))
async def list_transfers(services: ServicesDep, role: Role | None = None) -> list[dict[str, Any]]:
    """Transfers of this connector, in either role."""
    return [transfer_json(t) for t in await services.transfers.list(role=role)]


@router.get("/transfers/{tid}", **answers(TransferOut))
async def get_transfer(tid: str, services: ServicesDep) -> dict[str, Any]:
    """One transfer: its state and, once STARTED, its DataAddress."""
    return transfer_json(await services.transfers.get_local(tid))


@router.post(
    "/transfers/{tid}/complete",
    **answers(TransferOut, {409: "The transfer is not acknowledged by the counterparty yet"}),
)
async def complete_transfer(tid: str, services: ServicesDep) -> dict[str, Any]:
    """Complete a transfer (either side)."""
    return transfer_json(await services.transfers.complete(tid, actor=ACTOR))


@router.post(
    "/transfers/{tid}/suspend",
    **answers(TransferOut, {409: "The transfer is not acknowledged by the counterparty yet"}),
)
async def suspend_transfer(tid: str, body: ReasonIn, services: ServicesDep) -> dict[str, Any]:
    """Suspend a STARTED transfer (either side), with a reason; its data plane token stops
    working."""
    return transfer_json(await services.transfers.suspend(tid, reason=body.reason, actor=ACTOR))


@router.post(
    "/transfers/{tid}/resume",
    **answers(
        TransferOut,
        {
            403: "The agreement's time window has closed",
            409: "The transfer is not SUSPENDED, or another party suspended it",
        },
    ),
)
async def resume_transfer(tid: str, services: ServicesDep) -> dict[str, Any]:
    """Resume a transfer this connector suspended; as provider with a fresh DataAddress."""
    return transfer_json(await services.transfers.resume(tid, actor=ACTOR))


@router.post(
    "/transfers/{tid}/token",
    **answers(
        TransferOut,
        {
            403: "The provider refused: the agreement's policy no longer permits the transfer",
            409: "The transfer is not STARTED, is one we provide, or names no refreshEndpoint",
            502: "The provider could not be reached or answered unusably",
        },
    ),
)
async def refresh_transfer_token(tid: str, services: ServicesDep) -> dict[str, Any]:
    """Consumer: a fresh data plane token for a STARTED transfer, from the provider's
    ``refreshEndpoint`` (asked with this connector's own token and credentials, so the
    provider checks its policy again). The transfer's DataAddress then carries it."""
    t, endpoint = await services.transfers.refresh_endpoint(tid)
    token, expires_in = await fetch_data_plane_token(
        services.peer_http, services.tokens, endpoint, t.counterparty_did
    )
    return transfer_json(await services.transfers.record_token(tid, token, expires_in))


@router.post(
    "/transfers/{tid}/terminate",
    **answers(TransferOut, {409: "The transfer is not acknowledged by the counterparty yet"}),
)
async def terminate_transfer(tid: str, body: ReasonIn, services: ServicesDep) -> dict[str, Any]:
    """End a transfer (either side), with a reason."""
    return transfer_json(await services.transfers.terminate(tid, reason=body.reason, actor=ACTOR))
