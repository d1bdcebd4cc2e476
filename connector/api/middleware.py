"""Request id, structured access log and metrics for every request.

A pure ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs the app in a separate task and
streams the response through a memory channel, which costs more than many of our handlers.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.logs import client_var, request_id_var
from connector.metrics import Metrics

log = logging.getLogger("connector.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if 0 < len(incoming) <= 128 else uuid.uuid4().hex
        id_header = (b"x-request-id", request_id.encode("latin-1", "replace"))
        token = request_id_var.set(request_id)
        client = scope.get("client")
        client_token = client_var.set(str(client[0]) if client else "")
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Appended, not set through MutableHeaders (which first looks for and deletes
                # an existing one): nothing else sets this header.
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            route = getattr(scope.get("route"), "path", "unmatched")
            duration = time.perf_counter() - start
            method, path = scope["method"], scope["path"]
            self._metrics.requests.labels(method, route, str(status)).inc()
            self._metrics.latency.labels(route).observe(duration)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s",
                    method,
                    path,
                    status,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                    },
                )
        finally:
            request_id_var.reset(token)
            client_var.reset(client_token)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""
