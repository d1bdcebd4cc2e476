"""DSP 2025-1 HTTPS binding under ``/dsp/2025-1``: provider endpoints and consumer callbacks.

Both roles share one base URL (our ``callbackAddress`` is our DSP base); a path with a process
id is routed to that process whichever role we play in it. Every request is authenticated by
the caller's self-issued token; a process the caller is not a party of is 404.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import ServicesDep, get_services
from connector.dsp.messages import (
    CatalogRequestMessage,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    DatasetRequestMessage,
    TransferCompletionMessage,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
    dump,
    parse_message,
)
from connector.dsp.wire import DspMessage
from connector.errors import BadRequestError
from connector.exchange.catalog_service import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from connector.identity.tokens import VerifiedCaller, bearer_token

router = APIRouter(prefix="/dsp/2025-1", tags=["dataspace protocol"])
M = TypeVar("M", bound=DspMessage)


async def authenticate(request: Request, services: ServicesDep) -> VerifiedCaller:
    return await services.verifier.verify(bearer_token(request.headers.get("authorization")))


Caller = Annotated[VerifiedCaller, Depends(authenticate)]


# The message endpoints (the hot path: every negotiation and transfer step) take the request
# alone and call the two dependencies themselves: FastAPI's dependency resolution cost more
# than the rest of the routing (bench/README.md). The pid is documented by ``_PID``.
_PID = {
    "parameters": [
        {
            "name": "pid",
            "in": "path",
            "required": True,
            "description": "our process id (providerPid or consumerPid, by our role)",
            "schema": {"type": "string"},
        }
    ]
}


async def _message(request: Request, expected: type[M]) -> M:
    message = parse_message(await request.body(), expected)
    pids = {k: v for k in ("providerPid", "consumerPid") if (v := getattr(message, _attr(k), None))}
    request.state.dsp_pids = pids
    return message


def _attr(wire: str) -> str:
    return "provider_pid" if wire == "providerPid" else "consumer_pid"


class _OrjsonResponse(JSONResponse):
    """JSONResponse's compact UTF-8 JSON, written by orjson (a DSP message has no NaN)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _json(message: DspMessage, status: int = 200) -> JSONResponse:
    return _OrjsonResponse(dump(message), status_code=status)


# -- catalog --------------------------------------------------------------------------------


def _page_window(page: int | None, offset: int | None, limit: int | None) -> tuple[int, int]:
    size = DEFAULT_PAGE_SIZE if limit is None else limit
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise BadRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if page is not None and page < 1 or offset is not None and offset < 0:
        raise BadRequestError("page must be 1 or more and offset 0 or more")
    return (offset if offset is not None else ((page or 1) - 1) * size), size


@router.post("/catalog/request")
async def catalog_request(
    request: Request,
    caller: Caller,
    services: ServicesDep,
    page: int | None = None,
    offset: int | None = None,
    limit: int | None = None,
) -> Response:
    """The catalog, one page at a time (``?page=N`` or ``?offset=&limit=``, default 100 a
    page, or the ``offset`` / ``limit`` of a paging-only QuerySpec in ``filter`` when the URL
    names none); ``Link`` headers (RFC 8288) point to the next and previous pages."""
    message = await _message(request, CatalogRequestMessage)
    try:
        asked_offset, asked_limit = message.window()
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None
    if page is None and offset is None and limit is None:  # the URL's paging comes first
        # A QuerySpec asking for more than a page gets a page and a Link to the next.
        offset, limit = asked_offset, asked_limit and min(asked_limit, MAX_PAGE_SIZE)
    start, size = _page_window(page, offset, limit)
    result = await services.catalog.page(caller, offset=start, limit=size)
    url = f"{services.dsp_base}/catalog/request"
    links = []
    if result.has_next:
        links.append(f'<{url}?offset={start + size}&limit={size}>; rel="next"')
    if start > 0:
        links.append(f'<{url}?offset={max(0, start - size)}&limit={size}>; rel="prev"')
    headers = {"Link": ", ".join(links)} if links else {}
    return Response(result.body, media_type="application/json", headers=headers)


@router.get("/catalog/datasets/{dataset_id:path}")
async def catalog_dataset(dataset_id: str, caller: Caller, services: ServicesDep) -> JSONResponse:
    return JSONResponse(await services.catalog.dataset(caller, dataset_id))


@router.post("/catalog/datasets/request", include_in_schema=False)
async def catalog_dataset_request(
    request: Request, caller: Caller, services: ServicesDep
) -> JSONResponse:
    message = await _message(request, DatasetRequestMessage)
    return JSONResponse(await services.catalog.dataset(caller, message.dataset))


# -- contract negotiation -------------------------------------------------------------------


@router.post("/negotiations/request", status_code=201)
async def negotiation_request(request: Request) -> JSONResponse:
    services = await get_services(request)
    caller = await authenticate(request, services)
    message = await _message(request, ContractRequestMessage)
    if not message.is_initial:
        raise BadRequestError(
            "providerPid given: send a counter-offer to /negotiations/{pid}/request"
        )
    n, created = await services.negotiations.receive_request(caller, message)
    return _json(n.ack(), 201 if created else 200)


@router.post("/negotiations/offers", status_code=201)
async def negotiation_initial_offer(
    request: Request, caller: Caller, services: ServicesDep
) -> JSONResponse:
    message = await _message(request, ContractOfferMessage)
    if not message.is_initial:
        raise BadRequestError("consumerPid given: send to /negotiations/{pid}/offers")
    n, created = await services.negotiations.receive_offer(caller, message)
    return _json(n.ack(), 201 if created else 200)


@router.get("/negotiations/{pid}")
async def negotiation_get(pid: str, caller: Caller, services: ServicesDep) -> JSONResponse:
    return _json((await services.negotiations.get(caller, pid)).ack())


_NEGOTIATION_PATHS: dict[str, type[Any]] = {
    "request": ContractRequestMessage,
    "offers": ContractOfferMessage,
    "agreement": ContractAgreementMessage,
    "agreement/verification": ContractAgreementVerificationMessage,
    "events": ContractNegotiationEventMessage,
    "termination": ContractNegotiationTerminationMessage,
}


def _negotiation_route(action: str, expected: type[Any]) -> None:
    async def handler(request: Request) -> JSONResponse:
        services = await get_services(request)
        caller = await authenticate(request, services)
        message = await _message(request, expected)
        n = await services.negotiations.receive(caller, request.path_params["pid"], message)
        return _json(n.ack())

    handler.__name__ = f"negotiation_{action.replace('/', '_')}"
    router.add_api_route(
        f"/negotiations/{{pid}}/{action}", handler, methods=["POST"], openapi_extra=_PID
    )


for _action, _expected in _NEGOTIATION_PATHS.items():
    _negotiation_route(_action, _expected)


# -- transfer process -----------------------------------------------------------------------


@router.post("/transfers/request", status_code=201)
async def transfer_request(request: Request) -> JSONResponse:
    services = await get_services(request)
    caller = await authenticate(request, services)
    message = await _message(request, TransferRequestMessage)
    t, created = await services.transfers.receive_request(caller, message)
    return _json(t.ack(), 201 if created else 200)


@router.get("/transfers/{pid}")
async def transfer_get(pid: str, caller: Caller, services: ServicesDep) -> JSONResponse:
    return _json((await services.transfers.get(caller, pid)).ack())


_TRANSFER_PATHS: dict[str, type[Any]] = {
    "start": TransferStartMessage,
    "completion": TransferCompletionMessage,
    "termination": TransferTerminationMessage,
    "suspension": TransferSuspensionMessage,
}


def _transfer_route(action: str, expected: type[Any]) -> None:
    async def handler(request: Request) -> JSONResponse:
        services = await get_services(request)
        caller = await authenticate(request, services)
        message = await _message(request, expected)
        t = await services.transfers.receive(caller, request.path_params["pid"], message)
        return _json(t.ack())

    handler.__name__ = f"transfer_{action}"
    router.add_api_route(
        f"/transfers/{{pid}}/{action}", handler, methods=["POST"], openapi_extra=_PID
    )


for _action, _expected in _TRANSFER_PATHS.items():
    _transfer_route(_action, _expected)
