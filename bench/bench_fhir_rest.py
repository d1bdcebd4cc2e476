"""REST paging throughput: ``FhirRestSource.search`` against plain aiohttp fetching the same pages.

Starts sekmet-fhir (the test suite's venv and helper), loads the shared 10-patient data, then
alternates the two clients over the same searches and reports the median time of each and their
ratio (target: <= 1.2). Run from the repository root:

    PYTHONPATH=. .venv/bin/python bench/bench_fhir_rest.py [--rounds 15] [--count 100]

With ``--page-sizes`` it measures instead what the page size (``PHEMS_FHIR_PAGE_SIZE``) costs
a full scan, the way the connector runs one (``FhirRestSource.search`` without ``_count``):
sekmet is loaded with ``connector.sampledata`` (profile picu, ``--sample-patients``) and the
sizes alternate round by round over the same ``--type`` scan:

    PYTHONPATH=. .venv/bin/python bench/bench_fhir_rest.py --page-sizes 20,100,1000 \
        --sample-patients 400 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from adapters.fhir_rest import FhirRestSource
from connector.sampledata import generate
from tests.adapters.fhir.data import DATA_DIR
from tests.adapters.fhir.sekmet import SekmetServer, ensure_sekmet
from tests.conftest import free_port

SEARCHES = ("Encounter", "Condition", "Immunization")


async def plain(session: aiohttp.ClientSession, base: str, rtype: str, count: int) -> int:
    """What a hand-written client does: GET, parse, take the entries, follow next."""
    url: str | None = f"{base}/{rtype}?_count={count}"
    resources: list[dict[str, Any]] = []
    while url:
        async with session.get(url) as resp:
            resp.raise_for_status()
            page = orjson.loads(await resp.read())
        resources.extend(e["resource"] for e in page.get("entry", []))
        url = next((lnk["url"] for lnk in page.get("link", []) if lnk["relation"] == "next"), None)
    return len(resources)


async def ours(source: FhirRestSource, rtype: str, count: int) -> int:
    return len([r async for r in source.search(rtype, {"_count": str(count)})])


async def run(base: str, rounds: int, count: int, verbose: bool = False) -> None:
    source = FhirRestSource(base)
    session = aiohttp.ClientSession(headers={"Accept": "application/fhir+json"})
    timings: dict[str, list[float]] = {"plain": [], "ours": []}
    cpu: dict[str, float] = {"plain": 0.0, "ours": 0.0}  # client-side CPU: our own overhead
    try:
        totals = {t: await ours(source, t, count) for t in SEARCHES}  # warm-up, and the sizes
        assert totals == {t: await plain(session, base, t, count) for t in SEARCHES}
        for round_no in range(rounds):
            order = ("plain", "ours") if round_no % 2 == 0 else ("ours", "plain")
            for name in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                for rtype in SEARCHES:
                    if name == "plain":
                        await plain(session, base, rtype, count)
                    else:
                        await ours(source, rtype, count)
                timings[name].append(time.perf_counter() - start)
                cpu[name] += time.process_time() - start_cpu
    finally:
        await session.close()
        await source.aclose()
    if verbose:
        for name, values in timings.items():
            print(name, " ".join(f"{v * 1000:.0f}" for v in values))
    resources = sum(totals.values())
    pages = sum(-(-n // count) for n in totals.values())
    print(f"{resources} resources in {pages} pages of _count={count}, {rounds} rounds")
    for name in ("plain", "ours"):
        best, median = min(timings[name]), statistics.median(timings[name])
        print(
            f"  {name:5}: best {best * 1000:7.1f} ms ({resources / best:6.0f} resources/s), "
            f"median {median * 1000:7.1f} ms, client CPU {cpu[name] / rounds * 1000:5.1f} ms"
        )
    # The best round is the least disturbed by other load on a shared machine (as timeit does);
    # the median is printed too because it is what a busy server would see.
    best_ratio = min(timings["ours"]) / min(timings["plain"])
    median_ratio = statistics.median(timings["ours"]) / statistics.median(timings["plain"])
    print(f"  ratio ours/plain: best {best_ratio:.3f}, median {median_ratio:.3f} (target <= 1.2)")


async def page_sizes(base: str, sizes: list[int], rounds: int, rtype: str) -> None:
    """Full scans of ``rtype`` at each page size, alternating, the order flipped every round."""
    sources = {n: FhirRestSource(base, page_size=n) for n in sizes}
    timings: dict[int, list[float]] = {n: [] for n in sizes}
    found: set[int] = set()
    try:
        for round_no in range(rounds):
            for n in sizes if round_no % 2 == 0 else sizes[::-1]:
                start = time.perf_counter()
                found.add(len([r async for r in sources[n].search(rtype)]))
                timings[n].append(time.perf_counter() - start)
    finally:
        for source in sources.values():
            await source.aclose()
    (resources,) = found  # every page size returned the same number of resources
    largest = statistics.median(timings[max(sizes)])
    print(f"full {rtype} scan: {resources} resources, {rounds} rounds, median / best")
    for n in sizes:
        median, best = statistics.median(timings[n]), min(timings[n])
        print(
            f"  page size {n:5}: {-(-resources // n):5} pages, median {median:8.3f} s, "
            f"best {best:8.3f} s ({resources / median:7.0f} resources/s), "
            f"x{median / largest:5.1f} the largest page size"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="print every round")
    parser.add_argument(
        "--page-sizes", default="", help="comma-separated page sizes: measure those instead"
    )
    parser.add_argument("--sample-patients", type=int, default=400)
    parser.add_argument("--type", default="Observation", help="resource type of the scan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = SekmetServer(ensure_sekmet(), Path(tmp) / "sekmet", free_port())
        try:
            server.start()
            if args.page_sizes:
                sizes = sorted(int(n) for n in args.page_sizes.split(","))
                data = Path(tmp) / "sample"
                generate(data, patients=args.sample_patients, seed=1, profile="picu")
                server.load_ndjson(data, types=["Organization", "Location", "Patient", args.type])
                asyncio.run(page_sizes(server.base_url, sizes, args.rounds, args.type))
            else:
                server.load_ndjson(DATA_DIR)
                asyncio.run(run(server.base_url, args.rounds, args.count, args.verbose))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
