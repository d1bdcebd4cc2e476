"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from connector.composition import Services
from connector.errors import AuthenticationError


# Dependencies are async: FastAPI runs a sync one in a thread pool, a hop on every request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# Declared for the OpenAPI description (either one authenticates); checked below.
_API_KEY = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="ApiKey",
    description="The management API key (PHEMS_MANAGEMENT_API_KEY, or the one the connector "
    "wrote to <data dir>/management-api-key on first start).",
    auto_error=False,
)
_BEARER = HTTPBearer(
    scheme_name="Bearer",
    description="The management API key, or an OIDC access token from "
    "PHEMS_MANAGEMENT_OIDC_ISSUER for PHEMS_MANAGEMENT_OIDC_AUDIENCE.",
    auto_error=False,
)


async def authenticate_management(request: Request, services: Services) -> None:
    """Management API authentication: ``X-Api-Key``, ``Authorization: Bearer <API key>``, or
    (when an issuer is configured) ``Authorization: Bearer <OIDC access token>``."""
    supplied = request.headers.get("x-api-key", "")
    bearer = ""
    if not supplied:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            bearer = supplied = credentials.strip()
    if not supplied:
        raise AuthenticationError("management API: missing X-Api-Key or Authorization header")
    if hmac.compare_digest(supplied.encode(), services.management_api_key.encode()):
        request.state.management_authenticated = True
        return
    if bearer.count(".") == 2 and services.oidc is not None:
        claims = await services.oidc.verify(bearer)
        request.state.management_user = str(claims.get("sub"))
        request.state.management_authenticated = True
        return
    raise AuthenticationError("management API: wrong API key")


async def require_management_key(
    request: Request,
    services: ServicesDep,
    api_key: Annotated[str | None, Depends(_API_KEY)],
    authorization: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    """The management routes' dependency: documents the two schemes in the OpenAPI
    description; the check itself ran before the body was read (``AuthenticatedFirst``)."""
    if not getattr(request.state, "management_authenticated", False):
        await authenticate_management(request, services)


ManagementAuth = Depends(require_management_key)


class AuthenticatedFirst(APIRoute):
    """A route whose caller is authenticated before its request body is read: FastAPI reads
    and parses a body before it solves the dependencies, so an unauthenticated client could
    otherwise make the server parse (and hold) a body up to the surface's limit."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            await authenticate_management(request, await get_services(request))
            return await handler(request)

        return authenticated
