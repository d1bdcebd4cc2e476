"""A small fake FHIR server on loopback (aiohttp) for the failure modes a well-behaved sekmet
never shows: each test routes paths under ``/fhir/`` to handlers of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web

from tests.conftest import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def patients(*ids: str) -> list[dict[str, Any]]:
    return [
        {"fullUrl": f"x/Patient/{i}", "resource": {"resourceType": "Patient", "id": i}} for i in ids
    ]


def bundle(entries: Any, total: int | None = None, next_url: str = "", **more: Any) -> bytes:
    doc: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if total is not None:
        doc["total"] = total
    if next_url:
        doc["link"] = [{"relation": "next", "url": next_url}]
    return orjson.dumps(doc | more)


def json_response(body: bytes, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        body=body, status=status, headers=headers, content_type="application/fhir+json"
    )


class FakeServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.routes: dict[str, Handler] = {}
        self.hits: dict[str, list[float]] = {}
        self.queries: dict[str, list[dict[str, str]]] = {}
        # Handlers that never answer wait on this; set at teardown so the server can stop.
        self.release = asyncio.Event()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/fhir/")
        self.hits.setdefault(path, []).append(time.monotonic())
        self.queries.setdefault(path, []).append(dict(request.query))
        handler = self.routes.get(path) or self.routes.get("*")
        if handler is None:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-supported", "diagnostics": path}],
            }
            return json_response(orjson.dumps(outcome), 404)
        return await handler(request)

    async def never_answer(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return json_response(b"{}")

    async def pause(self, seconds: float) -> None:
        """A slow server's pause (cut short when the test ends)."""
        try:
            await asyncio.wait_for(self.release.wait(), seconds)
        except TimeoutError:
            pass


@asynccontextmanager
async def serving() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    app = web.Application()
    app.router.add_route("*", "/fhir/{tail:.*}", server.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()
