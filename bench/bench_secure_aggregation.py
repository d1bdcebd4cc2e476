"""Benchmark: a federated query over 5 hospitals, secure aggregation against plain mode.

Both sides run the coordinator (``connector.federation.coordinator.FederatedQueries.run``)
over the same five in-process hospitals, so what differs is exactly the secure path: each
hospital fetches its peers' key agreement keys, derives four pairwise masks (X25519, HKDF,
ChaCha20) and masks its vector, and the coordinator checks every share, sums them and builds
the MeasureReport; against each hospital building its MeasureReport (suppression, rounding)
and the coordinator reading it back into cells, summing them and building the MeasureReport.
The hospitals' query evaluation and the HTTP round trips (the same in both modes) are left
out, so the ratio is the secure path's own cost; target <= 1.5x.

The five hospitals run in one process here, one after the other; in a data space each runs on
its own machine, at the same time. So each hospital's part is timed on its own, and a query's
wait is the coordinator's part plus the slowest hospital's (what a user waits for, the network
aside). The total CPU of all six parties is printed too.

    python bench/bench_secure_aggregation.py                 # 64 cells, 200 queries a mode
    python bench/bench_secure_aggregation.py --cells 512 --queries 50

The hospitals and the cell codec are the test fakes (tests/federation/fakes.py): a patient
count stratified into ``cells - 1`` strata.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from connector.federation.coordinator import FederatedQueries
from connector.federation.ports import Hospital, HospitalReply
from tests.federation.fakes import FakeHospital, FakeNetwork, MemoryKeys

HOSPITALS = 5


def network(cells: int) -> FakeNetwork:
    rng = random.Random(5)
    keys = MemoryKeys()
    hospitals = []
    for i in range(HOSPITALS):
        true = [rng.randint(200, 5000)] + [rng.randint(0, 300) for _ in range(cells - 1)]
        noise = [rng.randint(-6, 6) for _ in range(cells)]
        hospital = FakeHospital(f"did:web:hospital-{i}.example", true, noise)
        keys.keys[hospital.did] = hospital.key.public_jwk()
        hospitals.append(hospital)
    return FakeNetwork(hospitals, keys)


class Timed:
    """The channel, timing each hospital's part (one at a time, so no other's is inside)."""

    def __init__(self, net: FakeNetwork) -> None:
        self.net = net
        self.parts: list[float] = []
        self.one_at_a_time = asyncio.Lock()

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        async with self.one_at_a_time:
            start = time.perf_counter()
            reply = await self.net.ask(hospital, body)
            self.parts.append(time.perf_counter() - start)
        return reply


async def measure(cells: int, queries: int) -> dict[str, dict[str, list[float]]]:
    net = network(cells)
    channel = Timed(net)
    coordinator = FederatedQueries(directory=net, channel=channel, codec=net.codec)
    query = {"cohort": {"inclusionCriteria": []}, "strata": [f"s{i}" for i in range(cells - 1)]}
    times: dict[str, dict[str, list[float]]] = {
        m: {"wait": [], "cpu": []} for m in ("plain", "secure")
    }
    for mode in ("plain", "secure", "plain", "secure"):  # warm both first
        await coordinator.run(query, mode=mode)  # type: ignore[arg-type]
    for _ in range(queries):
        for mode in ("plain", "secure"):  # interleaved: drift hits both alike
            channel.parts.clear()
            start = time.perf_counter()
            answer = await coordinator.run(query, mode=mode)  # type: ignore[arg-type]
            total = time.perf_counter() - start
            assert answer.status == "complete", answer.as_json()["hospitals"]
            times[mode]["cpu"].append(total)
            times[mode]["wait"].append(total - sum(channel.parts) + max(channel.parts))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=64)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    times = asyncio.run(measure(args.cells, args.queries))
    print(f"{HOSPITALS} hospitals, {args.cells} cells, {args.queries} queries a mode (median)")
    print("          wait ms    all parties' CPU ms")
    for mode in ("plain", "secure"):
        wait, cpu = (statistics.median(times[mode][k]) * 1000 for k in ("wait", "cpu"))
        print(f"{mode:8} {wait:8.2f} {cpu:12.2f}")
    ratio = {
        k: statistics.median(times["secure"][k]) / statistics.median(times["plain"][k])
        for k in ("wait", "cpu")
    }
    print(f"secure / plain: wait {ratio['wait']:.2f} (target <= 1.5), CPU {ratio['cpu']:.2f}")


if __name__ == "__main__":
    main()
