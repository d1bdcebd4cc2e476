"""``create_app(settings)``: the FastAPI application of one connector."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from connector import __version__
from connector.api import (
    catalog_routes,
    catalog_ui,
    dataplane,
    dsp_routes,
    fulfilment_routes,
    health,
    home,
    management,
    research_ui,
    wellknown,
)
from connector.api.apidocs import install_docs
from connector.api.limits import BodyLimits, BodySurfaces
from connector.api.middleware import RequestContextMiddleware
from connector.api.problems import document_errors, install_error_handlers
from connector.composition import build_services
from connector.metrics import Metrics
from connector.ports import Clock, Fulfilment
from connector.settings import Settings


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    fulfilments: list[Fulfilment] | None = None,
) -> FastAPI:
    """``fulfilments`` replaces the installed ones (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(
            settings, clock=clock, fulfilments=fulfilments, metrics=app.state.metrics
        )
        app.state.services = services
        sender = asyncio.create_task(services.sender.run(), name="outbox-sender")
        chainer = asyncio.create_task(services.audit.run_chainer(), name="audit-chainer")
        jobs = asyncio.create_task(services.jobs.run(), name="job-runner")
        # Build the catalog snapshot now rather than on the first catalog request.
        warm = asyncio.create_task(services.published.snapshot(), name="catalog-warm-up")
        try:
            yield
        finally:
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await warm
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            chainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chainer
            jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await jobs
            # Best effort: what is left pending is chained by the next start or `audit verify`.
            with contextlib.suppress(Exception):
                await services.audit.flush()
                await services.audit.checkpoint()
            await services.aclose()

    app = FastAPI(
        title="phems-connector",
        version=__version__,
        description="FHIR-native data space connector (DSP 2025-1, HealthDCAT-AP, ODRL).",
        lifespan=lifespan,
        # We export Prometheus metrics (/metrics) and JSON logs, not OpenTelemetry. Left on,
        # FastAPI's native telemetry looks up the global OTel providers (environment reads)
        # on every request: about 2% of a busy connector's CPU for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Swagger UI from the package (apidocs), not from a CDN; no ReDoc (CDN only).
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.metrics = Metrics()
    app.add_middleware(BodyLimits, limits=BodySurfaces.of(settings))
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(home.router)
    app.include_router(wellknown.router)
    app.include_router(dsp_routes.router)
    app.include_router(management.router)
    app.include_router(fulfilment_routes.router)
    app.include_router(dataplane.router)
    app.include_router(catalog_ui.router)
    app.include_router(research_ui.router)
    app.include_router(catalog_routes.router)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generate())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app
