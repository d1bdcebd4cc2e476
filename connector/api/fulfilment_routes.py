"""Management routes of the fulfilment seam: opt-outs, jobs, and on the consumer side pulling a
transfer's data through this connector and federated queries (docs/federated-queries.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from connector.api.deps import AuthenticatedFirst, ManagementAuth, ServicesDep
from connector.api.schemas import JobOut, OptOutChangeOut, OptOutOut
from connector.errors import NotFoundError
from connector.federation.service import QueryAnswerOut, QueryIn

router = APIRouter(
    prefix="/management",
    tags=["management"],
    dependencies=[ManagementAuth],
    # The caller is checked before the body is read (connector.api.deps).
    route_class=AuthenticatedFirst,
)
ACTOR = "management-api"


def _answers(model: Any, errors: dict[int, str] | None = None) -> dict[str, Any]:
    responses: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    responses.update({code: {"description": words} for code, words in (errors or {}).items()})
    return {"response_model": None, "responses": responses}


class OptOutsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patients: list[str] = Field(
        min_length=1, max_length=10_000, description="FHIR Patient ids (`Patient/` optional)."
    )


def _actor(request: Request) -> str:
    return str(getattr(request.state, "management_user", None) or ACTOR)


@router.get("/optouts", **_answers(list[OptOutOut]))
async def list_optouts(services: ServicesDep) -> list[dict[str, Any]]:
    """Patients who opted out of secondary use (the hospital's list; FHIR Consents denying
    research use are applied as well, from the data)."""
    return [o.as_json() for o in await services.optouts.listed()]


@router.post("/optouts", **_answers(OptOutChangeOut))
async def add_optouts(body: OptOutsIn, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Record opt-outs. No fulfilment sees these patients from the next call on."""
    added = await services.optouts.add(body.patients, actor=_actor(request))
    return {"changed": added, "total": len(await services.optouts.ids())}


@router.delete(
    "/optouts/{patient_id}", **_answers(OptOutChangeOut, {404: "The patient is not listed"})
)
async def remove_optout(
    patient_id: Annotated[str, Path(max_length=80)], request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Withdraw an opt-out (the patient consents to secondary use again)."""
    removed = await services.optouts.remove([patient_id], actor=_actor(request))
    if not removed:
        raise NotFoundError(f"patient {patient_id} is not on the opt-out list")
    return {"changed": removed, "total": len(await services.optouts.ids())}


@router.get("/jobs", **_answers(list[JobOut]))
async def list_jobs(services: ServicesDep) -> list[dict[str, Any]]:
    """The newest long jobs (flattened tables, statistics, synthesizer fits), with their stage
    and percentage."""
    return [j.as_json() for j in await services.jobs.store.recent(limit=100)]


@router.get("/jobs/{job_id}", **_answers(JobOut))
async def get_job(job_id: Annotated[str, Path(max_length=64)], services: ServicesDep) -> Any:
    """One job: its stage, percentage, and result or error."""
    job = await services.jobs.store.get(job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job.as_json()


@router.post(
    "/transfers/{tid}/data",
    response_model=None,
    responses={
        200: {"description": "The provider's answer, streamed as it sent it"},
        400: {"description": "The provider refused the request body (its problem passed on)"},
        403: {"description": "The provider's policy refused the call (its problem passed on)"},
        409: {"description": "The transfer is not STARTED, or is one we provide"},
        429: {"description": "The agreement's budget or the rate limit (Retry-After)"},
        501: {"description": "The provider has no fulfilment for the transfer's format"},
        502: {"description": "The provider could not be reached or refused a fresh token"},
        503: {"description": "The provider is preparing the data (Retry-After)"},
    },
)
async def pull_data(tid: str, request: Request, services: ServicesDep) -> StreamingResponse:
    """Consumer: send the request body to the provider's data plane under this transfer (a
    fresh token is fetched first when needed) and stream its answer back, status included."""
    pulled = await services.puller.pull(
        tid,
        body=await request.body(),
        media_type=request.headers.get("content-type"),
        params=dict(request.query_params),
    )
    return StreamingResponse(pulled.chunks, status_code=pulled.status, headers=pulled.headers)


@router.post(
    "/queries",
    **_answers(
        QueryAnswerOut,
        {400: "The query cannot run: invalid, no hospital to ask, or a hospital named twice"},
    ),
)
async def run_query(body: QueryIn, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Ask every hospital this connector holds an aggregate agreement with (or those named)
    one aggregate query, plain or with secure aggregation, and combine their answers. A
    hospital that cannot answer is named in the answer with its status; `status` says
    whether all, some or none contributed."""
    return await services.queries.run(body, actor=_actor(request))
