"""Benchmark: a data plane pull through the fulfilment seam with a trivial fulfilment, against
the same route answering pre-built bytes after the same token check (issue 17, target <= 1.5).

One connector process on loopback (``bench/pull_server.py``: the connector's app as
``phems-connector serve`` runs it, a ``FakeFulfilment`` installed for aggregate transfers),
over generated NDJSON (``--patients``), with its SQLite store or a fresh PostgreSQL database
(``--postgres``, created and dropped here). A seeded agreement without constraints and its
STARTED transfer; one pull builds the dataset's flattened tables before anything is measured.

- ``seam``: ``POST /dataplane/transfers/{tid}`` with the DataAddress token: the token, the
  transfer and agreement read, the policy at data plane scope, the rate limit, the flattened
  tables of the current data version (already built), the spend transaction (agreement row
  locked, use and epsilon, the call recorded, its audit entry), the fake fulfilment, the
  delivered audit entry, the answer streamed;
- ``prebuilt``: ``POST /bench/prebuilt/{tid}`` on the same server: ``verify_access_token``
  and the transfer check, then the same bytes (the baseline);
- ``durable``: the same plus one write transaction holding an audit entry: the least a pull
  must add (a use is spent atomically with the audit record of the call), for scale.

The rate limit is set high with a one-second window (``PHEMS_DATAPLANE_RATE_*``): the check
runs on every call and reads back the calls of the window, so a week-long window would make
each call read every call the bench made.

Per round, in alternating order, ``--requests`` calls of each side with ``--concurrency`` in
flight over keep-alive connections (aiohttp). Printed per side: calls/s, median and p90
latency, the server's CPU per call (utime + stime from /proc over that side's blocks); and the
ratio of the medians.

    PYTHONPATH=. python bench/bench_pull.py [--rounds 10 --requests 100 --concurrency 1,8]
    PYTHONPATH=. python bench/bench_pull.py --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from connector.sampledata import generate
from tests.conftest import free_port
from tests.processes import stop, wait_until_healthy

HERE = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TICK = os.sysconf("SC_CLK_TCK")
QUERY = b'{"version": "2"}'


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(
    tmp: Path, data: Path, database_url: str | None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHEMS_")}
    env.update(
        {
            "PHEMS_DATA_DIR": str(tmp / "connector"),
            "PHEMS_HOST": "127.0.0.1",
            "PHEMS_PORT": str(port),
            "PHEMS_PUBLIC_URL": url,
            "PHEMS_FHIR_FILES_DIR": str(data),
            "PHEMS_LOG_LEVEL": "WARNING",
            # The rate limit is checked on every call; a one-second window keeps the calls it
            # reads back to those of the last second (about what 50 a week reads).
            "PHEMS_DATAPLANE_RATE_LIMIT": "100000000",
            "PHEMS_DATAPLANE_RATE_WINDOW_SECONDS": "1",
            "PHEMS_DATAPLANE_WAIT_SECONDS": "600",
            "PYTHONPATH": str(HERE.parent),
        }
    )
    if database_url:
        env["PHEMS_DATABASE_URL"] = database_url
    log = tmp / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "pull_server.py")], env=env, stdout=out, stderr=out
        )
    try:
        wait_until_healthy(url, proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, url, log


async def _call(session: aiohttp.ClientSession, url: str, token: str) -> float:
    started = time.perf_counter()
    async with session.post(
        url,
        data=QUERY,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {body[:300]!r}")
    return time.perf_counter() - started


async def _block(
    session: aiohttp.ClientSession, url: str, token: str, requests: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            latencies.append(await _call(session, url, token))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def run(args: argparse.Namespace, url: str, pid: int) -> None:
    connector = aiohttp.TCPConnector(limit=max(args.concurrency))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(f"{url}/bench/seed") as response:
            seeded = await response.json()
        tid, token = seeded["transfer"], seeded["token"]
        sides = {
            "seam": f"{url}/dataplane/transfers/{tid}",
            "prebuilt": f"{url}/bench/prebuilt/{tid}",
            "durable": f"{url}/bench/durable/{tid}",
        }
        started = time.perf_counter()
        await _call(session, sides["seam"], token)  # builds the flattened tables
        print(f"first pull (flattened tables built): {time.perf_counter() - started:.1f} s")
        for concurrency in args.concurrency:
            for side_url in sides.values():  # warm: connections, caches
                await _block(session, side_url, token, args.requests, concurrency)
            latencies: dict[str, list[float]] = {s: [] for s in sides}
            walls = dict.fromkeys(sides, 0.0)
            cpus = dict.fromkeys(sides, 0.0)
            for r in range(args.rounds):
                order = list(sides.items())
                for side, side_url in order if r % 2 == 0 else reversed(order):
                    cpu, wall = cpu_seconds(pid), time.perf_counter()
                    latencies[side] += await _block(
                        session, side_url, token, args.requests, concurrency
                    )
                    walls[side] += time.perf_counter() - wall
                    cpus[side] += cpu_seconds(pid) - cpu
            calls = args.rounds * args.requests
            print(
                f"\nconcurrency {concurrency}: {args.rounds} rounds x {args.requests} calls a side"
            )
            print(f"{'':9} {'calls/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'server CPU ms/call':>19}")
            for side, times in latencies.items():
                times.sort()
                print(
                    f"{side:9} {calls / walls[side]:8.1f} {statistics.median(times) * 1000:8.2f} "
                    f"{times[int(len(times) * 0.9)] * 1000:8.2f} {cpus[side] / calls * 1000:19.2f}"
                )
            ratio = statistics.median(latencies["seam"]) / statistics.median(latencies["prebuilt"])
            cpu_ratio = cpus["seam"] / max(cpus["prebuilt"], 1e-9)
            durable = statistics.median(latencies["seam"]) / statistics.median(latencies["durable"])
            print(
                f"ratio seam/prebuilt: median latency {ratio:.2f} (target <= 1.5), "
                f"server CPU {cpu_ratio:.2f}; seam/durable: median latency {durable:.2f}"
            )


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100, help="calls a side and round")
    parser.add_argument(
        "--concurrency", default=[1, 8], type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database")
    args = parser.parse_args()
    database = f"bench_pull_{uuid.uuid4().hex[:8]}" if args.postgres else None
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp_name:
        tmp = Path(tmp_name)
        generate(tmp / "fhir", patients=args.patients, seed=5, profile="general")
        if database:
            asyncio.run(admin(f'CREATE DATABASE "{database}"'))
        url_db = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}" if database else None
        proc, url, log = start_server(tmp, tmp / "fhir", url_db)
        try:
            store = "PostgreSQL" if database else "SQLite"
            load = os.getloadavg()
            print(
                f"connector pid {proc.pid} at {url}, {store}; load average "
                f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cpus"
            )
            asyncio.run(run(args, url, proc.pid))
        except BaseException:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop(proc)
            if database:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
