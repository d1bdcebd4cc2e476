"""A small HTTP proxy for durability tests, run as its own process:

    python tests/e2e/flaky_proxy.py LISTEN_PORT TARGET_URL

Forwards every request to TARGET_URL. ``POST /__proxy/block`` with ``{"substring": s}`` makes
requests whose path contains ``s`` fail with 503 (not forwarded); ``/__proxy/unblock`` lifts
all blocks; ``GET /__proxy/log`` lists the forwarded requests (method, path, status).
"""

from __future__ import annotations

import sys

from aiohttp import ClientSession, web


def main() -> None:
    port, target = int(sys.argv[1]), sys.argv[2].rstrip("/")
    blocked: set[str] = set()
    forwarded: list[dict[str, object]] = []

    async def block(request: web.Request) -> web.Response:
        blocked.add((await request.json())["substring"])
        return web.json_response(sorted(blocked))

    async def unblock(request: web.Request) -> web.Response:
        blocked.clear()
        return web.json_response([])

    async def log(request: web.Request) -> web.Response:
        return web.json_response(forwarded)

    async def forward(request: web.Request) -> web.StreamResponse:
        if any(s in request.path for s in blocked):
            return web.Response(status=503, text="blocked by test proxy")
        session: ClientSession = request.app["session"]
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with session.request(
            request.method, target + request.path_qs, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            forwarded.append(
                {"method": request.method, "path": request.path, "status": upstream.status}
            )
            out_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=upstream.status, body=body, headers=out_headers)

    async def on_startup(app: web.Application) -> None:
        app["session"] = ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application()
    app.router.add_post("/__proxy/block", block)
    app.router.add_post("/__proxy/unblock", unblock)
    app.router.add_get("/__proxy/log", log)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
