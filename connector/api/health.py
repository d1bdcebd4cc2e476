"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from connector.api.deps import ServicesDep
from connector.db.engine import ping

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    if await ping(services.engine):
        return JSONResponse({"status": "ready", "store": "ok"})
    return JSONResponse(
        {
            "type": "about:blank",
            "title": "Not ready",
            "status": 503,
            "detail": "store unreachable",
        },
        status_code=503,
        media_type="application/problem+json",
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; the store's gauges are read now (``connector.metrics``)."""
    body = await request.app.state.metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4")
