"""The HTTP server under the connector: stock uvicorn, uvicorn with our guarded protocol
(`connector.api.server`: header timeout, header size limit, connection cap), and Hypercorn
(which has a read timeout of its own), serving the same tiny ASGI app. Requests/s over
keep-alive connections, alternating servers round by round; ratio = each / stock uvicorn.

    PYTHONPATH=. python bench/bench_server.py [--requests 20000] [--concurrency 32] [--rounds 5]

Hypercorn is measured only when it is importable (it is not a dependency: install it into a
scratch directory and put that on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b'{"status":"ok"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(kind: str, port: int) -> None:
    if kind == "hypercorn":
        from hypercorn.asyncio import serve as hserve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.read_timeout = 10
        config.accesslog = None
        asyncio.run(hserve(app, config))  # type: ignore[arg-type]
        return
    import uvicorn

    from connector.api.server import server_config
    from connector.settings import Settings

    if kind == "guarded":
        config = server_config(app, Settings(host="127.0.0.1", port=port))
        config.log_level = "warning"
    else:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, access_log=False, log_level="warning"
        )
    uvicorn.Server(config).run()


async def load(url: str, requests: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with session.get(url) as r:
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


async def ready(url: str) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = ["uvicorn", "guarded"]
    if importlib.util.find_spec("hypercorn"):
        kinds.append("hypercorn")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    for round_ in range(args.rounds):
        for kind in kinds if round_ % 2 == 0 else reversed(kinds):
            port = free_port()
            proc = multiprocessing.Process(target=serve, args=(kind, port), daemon=True)
            proc.start()
            try:
                url = f"http://127.0.0.1:{port}/"
                asyncio.run(ready(url))
                rates[kind].append(asyncio.run(load(url, args.requests, args.concurrency)))
            finally:
                proc.terminate()
                proc.join(10)
    base = statistics.median(rates["uvicorn"])
    for kind, values in rates.items():
        median = statistics.median(values)
        print(f"{kind:10s} median {median:8.0f} req/s  ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
