"""Benchmark: an aggregate query through the fulfilment against DuckDB counting the same cohort.

Warm: the flattened tables exist as Parquet files (the seam's view cache), and both sides have
run once. Per round, in alternating order:

- ``fulfilment``: ``AggregateFulfilment.facts`` + ``fulfil`` (parse and validate the CCDL body,
  compile, DuckDB over the Parquet files in a worker thread, suppression, OpenDP noise,
  rounding, MeasureReport built and validated, serialised), with an empty answer store each
  round so the answer is computed, not fetched;
- ``duckdb``: a hand-written DuckDB query counting the same cohort on the same files, on a
  warm in-process connection (the floor).

Cohorts: female patients with an asthma diagnosis; the same with a body weight over 20 kg (a
value filter). The true counts of both sides are checked equal first. Target: fulfilment /
duckdb <= 1.5 (issue 20).

    PYTHONPATH=. python bench/bench_aggregate.py --patients 2000 --rounds 15
    PYTHONPATH=. python bench/bench_aggregate.py --views DIR      # Parquet files built before

The Parquet files are built with the test suite's fixture builder (the SQL-on-FHIR runner over
generated NDJSON, then DuckDB): slow for 100,000 patients, so ``--views`` keeps them in a
directory to reuse. Hook: ``PATHS`` maps a path's name to a coroutine answering one query;
the data plane path (token, policy, budget, then this fulfilment) goes there when the seam
lands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from connector.clock import SystemClock
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.fulfilment.views import TABLES
from connector.ports import FlatViews, FulfilmentRequest
from connector.sampledata import generate

SNOMED = "http://snomed.info/sct"
MII = "fdpg.mii.cds"


def _criterion(context: str, system: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "context": {"system": MII, "code": context, "display": context},
        "termCodes": [{"system": system, "code": code, "display": code}],
        **extra,
    }


FEMALE = {
    "context": {"system": MII, "code": "Patient", "display": "Patient"},
    "termCodes": [{"system": "http://loinc.org", "code": "76689-9", "display": "Sex"}],
    "valueFilter": {
        "type": "concept",
        "selectedConcepts": [
            {
                "system": "http://hl7.org/fhir/administrative-gender",
                "code": "female",
                "display": "f",
            }
        ],
    },
}
ASTHMA = _criterion("Diagnose", SNOMED, "195967001")
HEAVY = _criterion(
    "Laboruntersuchung",
    "http://loinc.org",
    "29463-7",
    valueFilter={
        "type": "quantity-comparator",
        "comparator": "gt",
        "value": 20,
        "unit": {"code": "kg", "display": "kg"},
    },
)
COHORTS = {
    "female+asthma": (
        {"version": "2", "inclusionCriteria": [[FEMALE], [ASTHMA]]},
        """SELECT COUNT(DISTINCT p.patient_id) FROM patient p JOIN coding k
           ON k.patient_id = p.patient_id
           WHERE p.gender = 'female' AND k.resource_type = 'Condition'
             AND k.system = 'http://snomed.info/sct' AND k.code = '195967001'""",
    ),
    "female+asthma+weight>20kg": (
        {"version": "2", "inclusionCriteria": [[FEMALE], [ASTHMA], [HEAVY]]},
        """SELECT COUNT(DISTINCT p.patient_id) FROM patient p JOIN coding k
           ON k.patient_id = p.patient_id
           WHERE p.gender = 'female' AND k.resource_type = 'Condition'
             AND k.system = 'http://snomed.info/sct' AND k.code = '195967001'
             AND p.patient_id IN (SELECT o.patient_id FROM observation o
                                  WHERE o.code = '29463-7' AND o.value_unit = 'kg'
                                    AND o.value_quantity > 20)""",
    ),
}

Path_ = Callable[[bytes], Awaitable[Any]]


def _count(con: Any, sql: str) -> Any:
    return con.execute(sql).fetchone()


def build_views(patients: int, out: Path) -> FlatViews:
    from tests.fulfilment.flat_views import build_flat_views, load_ndjson

    marker = out / "patients.txt"
    tables = {t: out / f"{t}.parquet" for t in TABLES}
    if marker.exists() and all(p.exists() for p in tables.values()):
        print(f"reusing the Parquet files in {out}", flush=True)
        return FlatViews("bench", f"bench-{patients}", out, tables, int(marker.read_text()))
    with tempfile.TemporaryDirectory() as raw:
        started = time.perf_counter()
        counts = generate(Path(raw), patients=patients, seed=3, profile="general")
        took = time.perf_counter() - started
        print(f"generated {sum(counts.values()):,} resources in {took:.1f} s", flush=True)
        started = time.perf_counter()
        views = build_flat_views(
            load_ndjson(Path(raw)), out, dataset_id="bench", version=f"bench-{patients}"
        )
        print(f"built the Parquet files in {time.perf_counter() - started:.1f} s", flush=True)
    marker.write_text(str(patients))
    return views


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--views", type=Path, help="directory for the Parquet files (kept)")
    args = parser.parse_args()
    if args.views:
        args.views.mkdir(parents=True, exist_ok=True)
        views = build_views(args.patients, args.views)
        asyncio.run(run(views, args.rounds))
    else:
        with tempfile.TemporaryDirectory() as out:
            views = build_views(args.patients, Path(out))
            asyncio.run(run(views, args.rounds))


async def run(views: FlatViews, rounds: int) -> None:
    import duckdb

    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"CREATE VIEW \"{table}\" AS SELECT * FROM read_parquet('{views.tables[table]}')"
        )
    store = MemoryAnswerStore()
    engine = DuckDbEngine()
    fulfilment = AggregateFulfilment(store, SystemClock(), engine=engine)

    async def through_fulfilment(body: bytes) -> bytes:
        store.clear()  # computed every round, not fetched
        request = FulfilmentRequest(
            "bench", "bench", "did:web:bench", views.dataset_id, body, "application/json", {}
        )
        result = await fulfilment.fulfil(request, fulfilment.facts(request), views)
        return b"".join([chunk async for chunk in result.chunks])

    paths: dict[str, Path_] = {"fulfilment": through_fulfilment}
    # The data plane path (token, transfer, policy, budget, audit, then this fulfilment) is
    # registered here when the seam lands: paths["dataplane"] = ...

    print(f"{views.patients:,} patients; {rounds} rounds, alternating; times in ms")
    for name, (doc, sql) in COHORTS.items():
        body = json.dumps(doc).encode()
        truth = engine.evaluate(parse_request(body), views, datetime.now(UTC).date())[0]
        floor_count = con.execute(sql).fetchone()
        assert floor_count is not None and truth == floor_count[0], (truth, floor_count)
        timings: dict[str, list[float]] = {"duckdb": [], **{p: [] for p in paths}}
        for path in paths.values():  # warm
            await path(body)
        con.execute(sql).fetchone()
        for r in range(rounds):
            order = [*paths.items(), ("duckdb", None)]
            for label, path in order if r % 2 == 0 else reversed(order):
                started = time.perf_counter()
                if path is None:
                    await asyncio.to_thread(_count, con, sql)
                else:
                    await path(body)
                timings[label].append((time.perf_counter() - started) * 1000)
        floor = statistics.median(timings["duckdb"])
        print(f"\n{name} (true count {int(truth)}):")
        for label, times in timings.items():
            median = statistics.median(times)
            best, ratio = min(times), median / floor
            print(f"  {label:12} median {median:8.2f}  best {best:8.2f}  ratio {ratio:5.2f}")


if __name__ == "__main__":
    main()
