"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
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


async def require_management_key(
    request: Request,
    services: ServicesDep,
    api_key: Annotated[str | None, Depends(_API_KEY)],
    authorization: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> None:
    """Management API authentication: ``X-Api-Key``, ``Authorization: Bearer <API key>``, or
    (when an issuer is configured) ``Authorization: Bearer <OIDC access token>``."""
    supplied = api_key or ""
    bearer = ""
    if not supplied and authorization is not None:
        bearer = supplied = authorization.credentials.strip()
    if not supplied:
        raise AuthenticationError("management API: missing X-Api-Key or Authorization header")
    if hmac.compare_digest(supplied.encode(), services.management_api_key.encode()):
        return
    if bearer.count(".") == 2 and services.oidc is not None:
        claims = await services.oidc.verify(bearer)
        request.state.management_user = str(claims.get("sub"))
        return
    raise AuthenticationError("management API: wrong API key")


ManagementAuth = Depends(require_management_key)
