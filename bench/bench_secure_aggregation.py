"""Benchmark: a federated query over 5 hospitals, secure aggregation against plain mode.

Both modes run what a data user's ``phems-connector query run`` runs, in one process: the
coordinator (``FederatedQueries.run`` with the real ``AggregateCodec``) asks five hospitals,
each the real ``AggregateFulfilment`` over its own flattened tables (generated sample data,
five profiles and seeds), called as the data plane calls it (``facts`` then ``fulfil`` on the
JSON body, the answer's bytes read back). So what differs is exactly the secure path:

- secure: each hospital checks the session, reads its kept noise draw, resolves its four
  peers' key agreement keys, derives four pairwise masks (X25519, HKDF, ChaCha20) and masks
  its vector; the coordinator checks every share, sums them and builds the MeasureReport
  (suppression on the totals, rounding);
- plain: each hospital builds its MeasureReport (validated with fhir.resources); the
  coordinator reads each back into cells, sums them and builds the MeasureReport.

Left out, the same in both modes: HTTP between the connectors and the data plane's steps
around the fulfilment (token, policy, budget, audit), and key resolution over HTTP (the
peers' DID documents are cached by a connector's resolver; here a dict).

Two cases, each mode alternating with the other:

- ``repeated``: the hospitals have answered this query before (kept answers and draws), so
  the ratio is the secure path's own cost; target <= 1.5x (issue 20);
- ``new``: every round the answer stores are emptied, so each hospital evaluates the query
  (DuckDB), draws the noise and keeps it: what a user's new question costs.

The five hospitals run in one process here, one after the other; in a data space each runs on
its own machine, at the same time. So each hospital's part is timed on its own, and a query's
wait is the coordinator's part plus the slowest hospital's (what a user waits for, the network
aside). The total CPU of all six parties is printed too.

    PYTHONPATH=. python bench/bench_secure_aggregation.py                   # 1,000 patients each
    PYTHONPATH=. python bench/bench_secure_aggregation.py --patients 100 --queries 3   # tiny
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from connector.clock import FixedClock
from connector.federation.coordinator import FederatedQueries
from connector.federation.ports import Hospital, HospitalReply
from connector.fulfilment.aggregate.codec import AggregateCodec
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment, SecureParty
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.identity.did import Relationship
from connector.identity.signing import PublicJwk, generate_key
from connector.ports import FlatViews, FulfilmentRequest
from connector.sampledata import generate

SITES = [("general", 11), ("general", 12), ("cardiac", 13), ("picu", 14), ("haemophilia", 15)]
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
MII = "fdpg.mii.cds"
# Children seen as outpatients, by sex and age band, with their latest body weight: 14 cells.
QUERY: dict[str, Any] = {
    "version": "2",
    "inclusionCriteria": [
        [
            {
                "context": {"system": MII, "code": "Fall", "display": "Fall"},
                "termCodes": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                        "display": "ambulatory",
                    }
                ],
            }
        ]
    ],
    "measures": [
        {"type": "stratify", "by": "sex", "id": "sex"},
        {"type": "stratify", "by": "ageBand", "id": "age", "edges": [2, 6, 12]},
        {
            "type": "numeric",
            "id": "weight",
            "column": "observation.value_quantity",
            "criterion": {
                "context": {"system": MII, "code": "Laboruntersuchung", "display": "Labor"},
                "termCodes": [{"system": "http://loinc.org", "code": "29463-7", "display": "w"}],
            },
            "unit": "kg",
            "perPatient": "latest",
            "bounds": [0, 100],
            "statistics": ["count", "mean", "stddev"],
        },
    ],
    "options": {"purpose": "research"},
}


class Keys:
    """The peers' key agreement keys, as a connector's DID resolver holds them cached."""

    def __init__(self) -> None:
        self.keys: dict[str, PublicJwk] = {}

    async def resolve_key(
        self, did_url_or_kid: str, relationship: Relationship = "assertionMethod"
    ) -> PublicJwk:
        return self.keys[did_url_or_kid]


class Site:
    def __init__(self, did: str, views: FlatViews, keys: Keys) -> None:
        key = generate_key("X25519")
        keys.keys[did] = key.public_jwk()
        self.did, self.views, self.store = did, views, MemoryAnswerStore()
        self.fulfilment = AggregateFulfilment(
            self.store, FixedClock(NOW), party=SecureParty(did, key, keys)
        )

    async def answer(self, body: bytes) -> bytes:
        request = FulfilmentRequest(
            "agreement", "transfer", "did:web:user.example", self.views.dataset_id, body,
            "application/json", {}, {},
        )  # fmt: skip
        result = await self.fulfilment.fulfil(request, self.fulfilment.facts(request), self.views)
        return b"".join([chunk async for chunk in result.chunks])


class Network:
    """The directory and the channel over the sites, timing each hospital's part (one at a
    time, so no other's is inside)."""

    def __init__(self, sites: Sequence[Site]) -> None:
        self.sites = {s.did: s for s in sites}
        self.parts: list[float] = []
        self.one_at_a_time = asyncio.Lock()

    async def hospitals(self, named: Sequence[str] = ()) -> list[Hospital]:
        return [Hospital(did, f"agreement-{did}", "ds") for did in self.sites]

    async def ask(self, hospital: Hospital, body: bytes) -> HospitalReply:
        async with self.one_at_a_time:
            start = time.perf_counter()
            reply = await self.sites[hospital.did].answer(body)
            self.parts.append(time.perf_counter() - start)
        return HospitalReply(reply)


def build_sites(patients: int, root: Path) -> list[Site]:
    from tests.fulfilment.flat_views import build_flat_views, load_ndjson

    keys = Keys()
    sites = []
    for i, (profile, seed) in enumerate(SITES):
        raw = root / f"ndjson-{i}"
        generate(raw, patients=patients, seed=seed, profile=profile)
        views = build_flat_views(
            load_ndjson(raw), root / f"views-{i}", dataset_id=f"site-{i}", version="v1"
        )
        sites.append(Site(f"did:web:hospital-{i}.example", views, keys))
    return sites


async def measure(sites: list[Site], queries: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    network = Network(sites)
    coordinator = FederatedQueries(
        directory=network, channel=network, codec=AggregateCodec(FixedClock(NOW))
    )
    times: dict[str, dict[str, dict[str, list[float]]]] = {
        case: {m: {"wait": [], "cpu": []} for m in ("plain", "secure")}
        for case in ("repeated", "new")
    }
    for mode in ("plain", "secure", "plain", "secure"):  # warm both first
        await coordinator.run(QUERY, mode=mode)  # type: ignore[arg-type]
    for _ in range(queries):
        for case in ("repeated", "new"):
            for mode in ("plain", "secure"):  # interleaved: drift hits both alike
                if case == "new":
                    for site in sites:
                        site.store.clear()
                network.parts.clear()
                start = time.perf_counter()
                answer = await coordinator.run(QUERY, mode=mode)  # type: ignore[arg-type]
                total = time.perf_counter() - start
                assert answer.status == "complete", answer.as_json()["hospitals"]
                times[case][mode]["cpu"].append(total)
                times[case][mode]["wait"].append(total - sum(network.parts) + max(network.parts))
    return times


def report(times: dict[str, dict[str, dict[str, list[float]]]], patients: int, n: int) -> None:
    cells = len(AggregateCodec(FixedClock(NOW)).layout(QUERY))
    print(f"{len(SITES)} hospitals of {patients:,} patients, {cells} cells, {n} queries a case")
    print("case      mode      wait ms   all parties' CPU ms   (medians)")
    for case, modes in times.items():
        for mode in ("plain", "secure"):
            wait, cpu = (statistics.median(modes[mode][k]) * 1000 for k in ("wait", "cpu"))
            print(f"{case:9} {mode:8} {wait:8.2f} {cpu:12.2f}")
        ratio = {
            k: statistics.median(modes["secure"][k]) / statistics.median(modes["plain"][k])
            for k in ("wait", "cpu")
        }
        target = " (target <= 1.5)" if case == "repeated" else ""
        print(f"{case:9} secure / plain: wait {ratio['wait']:.2f}{target}, CPU {ratio['cpu']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000, help="patients per hospital")
    parser.add_argument("--queries", type=int, default=30, help="queries per case and mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sites = build_sites(args.patients, Path(tmp))
        times = asyncio.run(measure(sites, args.queries))
    report(times, args.patients, args.queries)


if __name__ == "__main__":
    main()
