"""The pull endpoint named in a transfer's DataAddress, and its token refresh.

Every call is checked: the bearer token (signed by us, bound to agreement and transfer), the
transfer is STARTED, and the caller is the agreement's consumer. Fulfilment of the formats
(aggregate queries, synthetic bundles, anonymized extracts) is added by the fulfilment
modules; until one is registered for a format the call is answered 501 after these checks.

The agreement's policy reaches every call through the token. It is evaluated (transfer
scope, against the consumer's credentials) whenever a token is issued, and a token expires
after ``TOKEN_LIFETIME`` or sooner, at the first instant the policy would no longer permit
the transfer (the end of its ``dateTime`` window, the expiry of a credential it was checked
against). A provider's own resume has no consumer credentials at hand: it checks the
agreement's time window only (refused once it has closed) and the token ends with the
window; the credentials are checked again at the next refresh. The constraints that need a
query's facts (purpose stated by the query, output type, cell size, epsilon, count of
queries) are evaluated at data plane scope by the fulfilment that defines the query.

A transfer may run longer than a token, or be resumed after a pause.
``POST /dataplane/transfers/{tid}/token`` (the DataAddress's ``refreshEndpoint``) gives the
transfer's consumer a fresh one, authenticated like any DSP call by its self-issued token
(DESIGN.md §3), while the transfer is STARTED and the policy still permits it (else 403 with
the failed constraints named). The fresh token replaces the one the consumer had: a transfer
has one valid token at a time (``connector.dataplane.tokens``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from connector.api.deps import ServicesDep
from connector.dataplane.tokens import seconds_left
from connector.errors import PhemsError
from connector.identity.tokens import bearer_token

router = APIRouter(prefix="/dataplane", tags=["data plane"])


_PULL_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing, expired or forged data plane token, one for another "
        "transfer or consumer, or one replaced since (by a refresh or a restart)"
    },
    403: {"description": "The transfer is not STARTED"},
    501: {"description": "Authorised, but no fulfilment for the transfer's format is installed"},
}


class NotImplementedYet(PhemsError):
    status = 501
    code = "not-implemented"
    title = "Fulfilment not available"


@router.get("/transfers/{tid}", operation_id="pull_transfer_data", responses=_PULL_ERRORS)
@router.post(
    "/transfers/{tid}", operation_id="pull_transfer_data_with_body", responses=_PULL_ERRORS
)
async def pull(tid: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """The data of a STARTED transfer, with the DataAddress's bearer token (bound to the
    agreement and the transfer). Answers 501 after its checks until fulfilment is installed."""
    token = bearer_token(request.headers.get("authorization"))
    transfer = await services.transfers.authorize_pull(token, tid)
    raise NotImplementedYet(
        f"transfer {tid} is authorised, but no fulfilment for {transfer.format} is installed"
    )


@router.post(
    "/transfers/{tid}/token",
    responses={
        401: {"description": "Missing or invalid self-issued token (as on DSP requests)"},
        403: {
            "description": "The transfer is not STARTED, or the agreement's policy no longer "
            "permits it (the detail names the failed constraints)"
        },
    },
)
async def refresh_token(tid: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """A fresh data plane token for the consumer of a STARTED transfer (the DataAddress's
    ``refreshEndpoint``), asked with the consumer connector's self-issued token and current
    credentials; the agreement's policy is evaluated again."""
    caller = await services.verifier.verify(bearer_token(request.headers.get("authorization")))
    token, expires = await services.transfers.refresh_token(caller, tid)
    return {
        "authorization": token,
        "authType": "bearer",
        "expiresIn": seconds_left(expires, services.clock.now()),
    }
