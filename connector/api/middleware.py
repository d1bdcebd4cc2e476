"""Request id, structured access log and metrics for every request."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

from connector.api.metrics import Metrics
from connector.logs import request_id_var

log = logging.getLogger("connector.access")


class RequestContextMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: object, metrics: Metrics) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._metrics = metrics

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 128 else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        try:
            response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", "unmatched")
            duration = time.perf_counter() - start
            self._metrics.requests.labels(request.method, route, str(response.status_code)).inc()
            self._metrics.latency.labels(route).observe(duration)
            response.headers["X-Request-Id"] = request_id
            log.info(
                "%s %s %s",
                request.method,
                request.url.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.url.path,
                    "status": response.status_code,
                    "duration_ms": round(duration * 1000, 2),
                },
            )
            return response
        finally:
            request_id_var.reset(token)
