"""The pull endpoint named in a transfer's DataAddress, and its token refresh.

Every call is checked: the bearer token (signed by us, bound to agreement and transfer), the
transfer is STARTED, and the caller is the agreement's consumer. Fulfilment of the formats
(aggregate queries, synthetic bundles, anonymized extracts) is added by the fulfilment
modules; until one is registered for a format the call is answered 501 after these checks.
The agreement's policy at data plane scope is not evaluated here yet: on the data plane every
constraint needs its fact (the query's purpose, output type, cell size, epsilon), and those
facts come from the query that fulfilment defines. It is evaluated at transfer start.

Data plane tokens are short-lived (``TOKEN_LIFETIME``); a transfer may run longer, or be
resumed by the consumer after a pause. ``POST /dataplane/transfers/{tid}/token`` (the
DataAddress's ``refreshEndpoint``) gives the transfer's consumer a fresh one, authenticated
like any DSP call by its self-issued token (DESIGN.md §3), while the transfer is STARTED.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from connector.api.deps import ServicesDep
from connector.dataplane.tokens import TOKEN_LIFETIME, verify_access_token
from connector.dsp.states import TransferState
from connector.errors import AuthenticationError, ForbiddenError, NotFoundError, PhemsError
from connector.identity.tokens import bearer_token

router = APIRouter(prefix="/dataplane", tags=["data plane"])


class NotImplementedYet(PhemsError):
    status = 501
    code = "not-implemented"
    title = "Fulfilment not available"


@router.api_route("/transfers/{tid}", methods=["GET", "POST"])
async def pull(tid: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    claims = verify_access_token(
        bearer_token(request.headers.get("authorization")),
        did=services.did,
        keys=services.keys,
        now=services.clock.now(),
    )
    if claims.transfer_id != tid:
        raise AuthenticationError("data plane token is for another transfer")
    async with services.dsp_store.transaction() as conn:
        transfer = await services.dsp_store.get_transfer(conn, tid)
        agreement = await services.dsp_store.get_agreement(conn, claims.agreement_id)
    if transfer is None or agreement is None or transfer.agreement_id != agreement.id:
        raise NotFoundError(f"no transfer {tid}")
    if agreement.consumer_did != claims.consumer:
        raise AuthenticationError("data plane token is not for this agreement's consumer")
    if transfer.state is not TransferState.STARTED:
        raise ForbiddenError(f"transfer {tid} is {transfer.state}, not STARTED")
    raise NotImplementedYet(
        f"transfer {tid} is authorised, but no fulfilment for {transfer.format} is installed"
    )


@router.post("/transfers/{tid}/token")
async def refresh_token(tid: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """A fresh data plane token for the consumer of a STARTED transfer."""
    caller = await services.verifier.verify(bearer_token(request.headers.get("authorization")))
    return {
        "authorization": await services.transfers.refresh_token(caller, tid),
        "authType": "bearer",
        "expiresIn": int(TOKEN_LIFETIME.total_seconds()),
    }
