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
    """Ready to serve once the store answers (200). Work still under way in the background
    is listed, not waited for: the connector serves meanwhile (``preparing``: statistics and
    flattened tables being computed, with their stage and percentage)."""
    if await ping(services.engine):
        preparing = [
            {"job": j.id, "kind": j.kind, "stage": j.stage, "percent": round(j.percent, 1)}
            | ({"dataset": str(j.params["dataset"])} if "dataset" in j.params else {})
            for j in await services.jobs.store.recent(limit=50)
            if not j.state.finished
        ]
        return JSONResponse({"status": "ready", "store": "ok", "preparing": preparing})
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
