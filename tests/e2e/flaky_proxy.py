"""A small HTTP proxy for durability tests, run as its own process:

    python tests/e2e/flaky_proxy.py LISTEN_PORT TARGET_URL

Forwards every request to TARGET_URL. ``POST /__proxy/block`` with ``{"substring": s}`` makes
requests whose path contains ``s`` fail with 503 (not forwarded); ``/__proxy/unblock`` lifts
all blocks; ``GET /__proxy/log`` lists the forwarded requests (method, path, status, and the
answer's body as text when it is JSON of at most 64 KiB). ``POST /__proxy/hold`` with
``{"substring": s}`` keeps requests whose path contains ``s`` waiting, unforwarded, until
``POST /__proxy/release`` (``GET /__proxy/held`` counts them). When the target cannot be
reached the proxy answers 502, as a reverse proxy in front of a dead server does.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import ClientConnectionError, ClientSession, web

RECORDED = 64 * 1024


def main() -> None:
    port, target = int(sys.argv[1]), sys.argv[2].rstrip("/")
    blocked: set[str] = set()
    held: set[str] = set()
    waiting: list[asyncio.Event] = []
    forwarded: list[dict[str, object]] = []

    async def block(request: web.Request) -> web.Response:
        blocked.add((await request.json())["substring"])
        return web.json_response(sorted(blocked))

    async def unblock(request: web.Request) -> web.Response:
        blocked.clear()
        return web.json_response([])

    async def hold(request: web.Request) -> web.Response:
        held.add((await request.json())["substring"])
        return web.json_response(sorted(held))

    async def release(request: web.Request) -> web.Response:
        held.clear()
        for event in waiting:
            event.set()
        waiting.clear()
        return web.json_response([])

    async def count_held(request: web.Request) -> web.Response:
        return web.json_response(len(waiting))

    async def log(request: web.Request) -> web.Response:
        return web.json_response(forwarded)

    async def forward(request: web.Request) -> web.StreamResponse:
        if any(s in request.path for s in blocked):
            return web.Response(status=503, text="blocked by test proxy")
        if any(s in request.path for s in held):
            event = asyncio.Event()
            waiting.append(event)
            await event.wait()
        session: ClientSession = request.app["session"]
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        try:
            async with session.request(
                request.method, target + request.path_qs, headers=headers, data=await request.read()
            ) as upstream:
                body = await upstream.read()
                entry: dict[str, object] = {
                    "method": request.method,
                    "path": request.path,
                    "status": upstream.status,
                }
                if "json" in upstream.headers.get("content-type", "") and len(body) <= RECORDED:
                    entry["body"] = body.decode(errors="replace")
                forwarded.append(entry)
                out_headers = {
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
                }
                return web.Response(status=upstream.status, body=body, headers=out_headers)
        except ClientConnectionError as exc:
            forwarded.append({"method": request.method, "path": request.path, "status": 502})
            return web.Response(status=502, text=f"test proxy: the target is down ({exc})")

    async def on_startup(app: web.Application) -> None:
        app["session"] = ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application()
    app.router.add_post("/__proxy/block", block)
    app.router.add_post("/__proxy/unblock", unblock)
    app.router.add_post("/__proxy/hold", hold)
    app.router.add_post("/__proxy/release", release)
    app.router.add_get("/__proxy/held", count_held)
    app.router.add_get("/__proxy/log", log)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
