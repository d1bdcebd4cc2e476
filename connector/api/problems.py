"""Errors by surface: RFC 9457 problem+json outside DSP routes, DSP error bodies on DSP routes.

Unknown errors become a 500 that carries a correlation id, never the exception text.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connector.errors import PhemsError
from connector.logs import request_id_var

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
DSP_PREFIX = "/dsp/"


def problem(
    status: int, title: str, detail: str, *, type_: str = "about:blank", **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    request_id = request_id_var.get()
    if request_id:
        body["requestId"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def dsp_error_type(path: str) -> str:
    if "/negotiations" in path:
        return "ContractNegotiationError"
    if "/transfers" in path:
        return "TransferError"
    return "CatalogError"


def dsp_error(request: Request, status: int, code: str, reason: str) -> JSONResponse:
    """The DSP error body; provider/consumer pids are added by the DSP routes where known."""
    body: dict[str, Any] = {
        "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
        "@type": dsp_error_type(request.url.path),
        "code": code,
        "reason": [reason],
    }
    pids = getattr(request.state, "dsp_pids", None)
    if pids:
        body.update(pids)
    return JSONResponse(body, status_code=status)


def _is_dsp(request: Request) -> bool:
    return DSP_PREFIX in request.url.path


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PhemsError)
    async def _phems(request: Request, exc: PhemsError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request failed: %s", exc.detail)
        if _is_dsp(request):
            reason = exc.detail if exc.status < 500 else exc.title
            return dsp_error(request, exc.status, exc.code, reason)
        return problem(
            exc.status, exc.title, exc.detail, type_=f"https://w3id.org/phems/problems/{exc.code}"
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid"
        if _is_dsp(request):
            return dsp_error(request, 400, "400", detail)
        return problem(400, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail) if exc.detail else "error"
        if _is_dsp(request):
            return dsp_error(request, exc.status_code, str(exc.status_code), detail)
        return problem(exc.status_code, detail, detail)

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception) -> JSONResponse:
        correlation = request_id_var.get() or uuid.uuid4().hex
        log.exception("unhandled error (correlation id %s)", correlation)
        detail = f"internal error; correlation id {correlation}"
        if _is_dsp(request):
            return dsp_error(request, 500, "500", detail)
        return problem(500, "Internal error", detail, correlationId=correlation)
