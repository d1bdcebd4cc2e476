"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from connector.composition import Services
from connector.errors import AuthenticationError


# Dependencies are async: FastAPI runs a sync one in a thread pool, a hop on every request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def require_management_key(request: Request, services: ServicesDep) -> None:
    """Management API authentication: ``X-Api-Key``, ``Authorization: Bearer <API key>``, or
    (when an issuer is configured) ``Authorization: Bearer <OIDC access token>``."""
    supplied = request.headers.get("x-api-key", "")
    bearer = ""
    auth = request.headers.get("authorization", "")
    if not supplied and auth.lower().startswith("bearer "):
        bearer = supplied = auth[7:].strip()
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
