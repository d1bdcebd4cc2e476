"""Errors by surface: RFC 9457 problem+json outside DSP routes, DSP error bodies on DSP routes,
and an HTML page for a browser (an Accept header that prefers text/html) outside DSP routes.

Unknown errors become a 500 that carries a correlation id, never the exception text. A 401
carries its WWW-Authenticate challenge, a 405 the methods the path has. ``document_errors``
makes the OpenAPI description say the same.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from connector.api.pages import html_page, wants_html
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


def problem_or_page(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    **extra: Any,
) -> Response:
    """problem+json for a program, the same in an HTML page for a browser."""
    if wants_html(request):
        return html_page(
            "error.html", status=status, title=title, detail=detail, request_id=request_id_var.get()
        )
    return problem(status, title, detail, type_=type_, **extra)


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


def _challenge(request: Request) -> str:
    """A 401's WWW-Authenticate (RFC 9110 requires one; RFC 6750 for bearer tokens): every
    protected route takes a bearer token (the management API also an X-Api-Key header), and
    a token that was sent and refused is an invalid_token."""
    path = request.url.path
    realm = "management" if path.startswith("/management") else path.split("/")[1] or "api"
    if "authorization" in request.headers:
        return f'Bearer realm="{realm}", error="invalid_token"'
    return f'Bearer realm="{realm}"'


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PhemsError)
    async def _phems(request: Request, exc: PhemsError) -> Response:
        if exc.status >= 500 and exc.status not in (501, 503):
            log.error("request failed: %s", exc.detail)
        response: Response
        if _is_dsp(request):
            reason = exc.detail if exc.status < 500 else exc.title
            response = dsp_error(request, exc.status, exc.code, reason)
        else:
            response = problem_or_page(
                request,
                exc.status,
                exc.title,
                exc.detail,
                type_=f"https://w3id.org/phems/problems/{exc.code}",
            )
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = _challenge(request)
        response.headers.update(exc.headers())
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid"
        if _is_dsp(request):
            return dsp_error(request, 400, "400", detail)
        return problem_or_page(request, 400, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail) if exc.detail else "error"
        response: Response
        if _is_dsp(request):
            response = dsp_error(request, exc.status_code, str(exc.status_code), detail)
        else:
            response = problem_or_page(request, exc.status_code, detail, detail)
        # Headers the exception carries are part of the answer, and a 405 names every method
        # the resource has (RFC 9110); Starlette's Allow names only those of the first route
        # that matched the path, and FastAPI makes one route a method.
        response.headers.update(exc.headers or {})
        if exc.status_code in (408, 413):
            # The rest of the body is not read: the connection cannot carry another request.
            response.headers["Connection"] = "close"
        if exc.status_code == 405:
            allowed = allowed_methods(request.app.openapi(), request.url.path)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # Nobody reads this answer; connector.api.limits logged the aborted upload.
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _unknown(request: Request, exc: Exception) -> Response:
        correlation = request_id_var.get() or uuid.uuid4().hex
        log.exception("unhandled error (correlation id %s)", correlation)
        detail = f"internal error; correlation id {correlation}"
        if _is_dsp(request):
            return dsp_error(request, 500, "500", detail)
        return problem_or_page(request, 500, "Internal error", detail, correlationId=correlation)


def matching_templates(schema: dict[str, Any], path: str) -> list[str]:
    """The description's path templates that ``path`` matches, the most specific (most
    literal characters) first: ``/negotiations/offers`` before ``/negotiations/{nid}``."""
    found = []
    for template in schema.get("paths", {}):
        pattern = "".join(
            ".+" if part.startswith("{") else re.escape(part)
            for part in re.split(r"(\{[^}]+\})", template)
        )
        if re.fullmatch(pattern, path):
            found.append((len(re.sub(r"\{[^}]+\}", "", template)), template))
    return [template for _, template in sorted(found, reverse=True)]


def allowed_methods(schema: dict[str, Any], path: str) -> list[str]:
    """The methods the description documents for ``path`` (its most specific matching
    template), HEAD with GET as Starlette serves it; empty for an undocumented path."""
    templates = matching_templates(schema, path)
    if not templates:
        return []
    methods = {m.upper() for m in schema["paths"][templates[0]] if m.isalpha()}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


# -- the errors in the OpenAPI description --------------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details: every error outside the DSP routes."""

    type: str = Field(description="A URI naming the kind of problem; about:blank for plain HTTP.")
    title: str
    status: int
    detail: str = Field(description="What went wrong with this request, in words.")
    requestId: str | None = Field(default=None, description="Also in the X-Request-Id header.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Request validation only: each invalid field, loc and msg."
    )


class DspError(BaseModel):
    """A ContractNegotiationError, TransferError or CatalogError (DSP 2025-1 HTTPS bindings)."""

    context: list[str] = Field(alias="@context")
    type: str = Field(
        alias="@type", description="ContractNegotiationError, TransferError or CatalogError."
    )
    providerPid: str | None = Field(default=None, description="Where this process is known.")
    consumerPid: str | None = Field(default=None, description="Where this process is known.")
    code: str
    reason: list[str]


_ERROR_WORDS = {
    400: "Invalid request: a malformed body, a field out of range, or a transition not allowed "
    "from the current state",
    401: "Missing or invalid credentials",
    408: "The request body did not arrive in time",
    413: "The request body is larger than this API accepts",
    403: "Refused by the agreement's policy (the detail names the failed constraints)",
    404: "No such resource (or not one of the caller's)",
    409: "Conflicts with the resource's current state; the detail says which",
    502: "The counterparty or an upstream system failed or answered unusably",
}


_PROBLEM = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_DSP_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/DspError"}}}


def document_errors(schema: dict[str, Any]) -> None:
    """Make the generated OpenAPI say what the routes answer on errors: request validation is a
    400 (FastAPI documents 422), errors are problem+json outside the DSP routes and DSP error
    bodies on them, and the statuses every route of a kind can give are listed."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, DspError):
        components[model.__name__] = model.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}"
        )
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        dsp = path.startswith(DSP_PREFIX)
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            codes = set()
            # Routes that read a body (DSP and data plane routes read theirs themselves).
            reads_body = path.startswith((DSP_PREFIX, "/dataplane/")) and method == "post"
            if operation.get("requestBody") or reads_body:
                codes |= {408, 413}
            if dsp or operation.get("parameters") or operation.get("requestBody"):
                codes.add(400)
            if dsp or operation.get("security"):
                codes.add(401)
            if "{" in path:
                codes.add(404)
            for code in codes:
                responses.setdefault(str(code), {})
            for code, response in responses.items():
                if not code.startswith(("4", "5")):
                    continue
                response.setdefault("description", _ERROR_WORDS.get(int(code), "Error"))
                response.setdefault("content", _DSP_ERROR if dsp else _PROBLEM)
