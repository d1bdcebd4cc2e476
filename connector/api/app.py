"""``create_app(settings)``: the FastAPI application of one connector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from connector import __version__
from connector.api import health, wellknown
from connector.api.metrics import Metrics
from connector.api.middleware import RequestContextMiddleware
from connector.api.problems import install_error_handlers
from connector.composition import build_services
from connector.ports import Clock
from connector.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings, clock=clock)
        app.state.services = services
        try:
            yield
        finally:
            await services.aclose()

    app = FastAPI(
        title="phems-connector",
        version=__version__,
        description="FHIR-native data space connector (DSP 2025-1, HealthDCAT-AP, ODRL).",
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(wellknown.router)
    return app
