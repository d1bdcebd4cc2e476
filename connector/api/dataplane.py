"""The pull endpoint named in a transfer's DataAddress, and its token refresh.

Every call is checked: the bearer token (signed by us, bound to agreement and transfer), the
transfer is STARTED, and the caller is the agreement's consumer. The fulfilment installed for
the transfer's format answers (aggregate queries, synthetic bundles; anonymized extracts
later); a format without one is answered 501 after these checks.

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
from fastapi.responses import StreamingResponse

from connector.api.deps import ServicesDep
from connector.dataplane.tokens import seconds_left
from connector.identity.tokens import bearer_token

router = APIRouter(prefix="/dataplane", tags=["data plane"])


_PULL_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The answer, streamed; its media type depends on the output type"},
    400: {"description": "The request body is invalid (the bad part named)"},
    401: {
        "description": "Missing, expired or forged data plane token, one for another "
        "transfer or consumer, or one replaced since (by a refresh or a restart)"
    },
    403: {
        "description": "The transfer is not STARTED, or the agreement's policy forbids this "
        "call (the failed constraint named)"
    },
    429: {
        "description": "The agreement's count or epsilon budget is used up, or the data "
        "user's rate limit (Retry-After)"
    },
    501: {"description": "No fulfilment for the transfer's format is installed"},
    503: {
        "description": "The dataset's data are being prepared, or its synthetic data model "
        "fitted (Retry-After); nothing spent. Without Retry-After: the model is not served "
        "(below the hospital's minimum levels, or its fit failed)"
    },
}


@router.get("/transfers/{tid}", operation_id="pull_transfer_data", responses=_PULL_ERRORS)
@router.post(
    "/transfers/{tid}", operation_id="pull_transfer_data_with_body", responses=_PULL_ERRORS
)
async def pull(tid: str, request: Request, services: ServicesDep) -> StreamingResponse:
    """The data of a STARTED transfer, with the DataAddress's bearer token (bound to the
    agreement and the transfer). The body (for a POST) is the request of the transfer's
    output type, e.g. an aggregate query; docs/fulfilment.md says what each status means."""
    result = await services.dataplane.pull(
        tid,
        bearer_token(request.headers.get("authorization")),
        body=request.body,
        media_type=request.headers.get("content-type"),
        params=dict(request.query_params),
    )
    return StreamingResponse(result.chunks, media_type=result.media_type)


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
