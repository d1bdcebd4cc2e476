"""Benchmark: aggregate queries through the data plane, warm and cold (issue 20).

A connector's services run in this process over generated NDJSON (``--patients``) through the
file source, with the installed aggregate fulfilment and its SQL answer store (SQLite), a
dataset over all the data and an agreement without constraints with its STARTED transfer.
Each call is ``DataPlaneService.pull`` with the DataAddress token: the token, transfer and
agreement, the policy at data plane scope, the rate limit, the flattened tables of the current
data version (built as a job when missing), the spend transaction with its audit entry, the
query (parse, compile, DuckDB over the Parquet files, suppression, OpenDP noise, rounding,
MeasureReport), the delivered audit entry. Cohorts: female patients with an asthma diagnosis;
the same with a body weight over 20 kg (a value filter). The true counts of every side are
checked equal first.

**Warm** (target <= 1.5): the tables exist; the answer store is emptied before each call
(outside the timing), so every answer is computed. Against a hand-written DuckDB query
counting the same cohort on the same Parquet files over a warm in-process connection. A third
line runs ``AggregateFulfilment`` alone (no data plane) for scale.

**Cold** (target <= 3): the data change (a file's modification time, so the source's version)
before each call, which then builds the flattened tables (the view-cache job: the views' SQL
form in DuckDB over the NDJSON, scope and opt-outs, Parquet) and answers. Against DuckDB
``read_json`` computing the same count straight from the NDJSON files in-process.

Rounds alternate the order of the sides; median and best of each, ratio of the medians.

    PYTHONPATH=. python bench/bench_aggregate.py --patients 100000 --rounds 21 --cold-rounds 3
    PYTHONPATH=. python bench/bench_aggregate.py --work DIR   # keep data and cache for reruns

The rate limit is set high with a one-second window (it is checked on every call, reading
back the calls of its window); tokens are issued fresh for each call (they last 15 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.pull_server import seed_transfer, token_for
from connector.clock import SystemClock
from connector.composition import Services, build_services
from connector.db.tables import aggregate_answers
from connector.fulfilment.aggregate.engine import DuckDbEngine
from connector.fulfilment.aggregate.fulfilment import AggregateFulfilment
from connector.fulfilment.aggregate.request import parse_request
from connector.fulfilment.aggregate.store import MemoryAnswerStore
from connector.fulfilment.scope import DatasetScope
from connector.fulfilment.views import TABLES
from connector.ports import FlatViews, FulfilmentRequest
from connector.sampledata import generate
from connector.settings import Settings

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

Side = Callable[[bytes], Awaitable[Any]]


def _ndjson(data: Path, rtype: str) -> str:
    files = sorted(str(p) for p in data.glob(f"{rtype}.*ndjson*"))
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"


def cold_sql(cohort: str, data: Path) -> str:
    """The cohort counted by DuckDB straight from the NDJSON files (the cold floor)."""
    patients = (
        f"SELECT id FROM read_json({_ndjson(data, 'Patient')}, format='newline_delimited', "
        "columns={'id': 'VARCHAR', 'gender': 'VARCHAR'}) WHERE gender = 'female'"
    )
    asthma = (
        "SELECT substr(subject.reference, 9) AS pid FROM read_json("
        f"{_ndjson(data, 'Condition')}, format='newline_delimited', columns={{"
        "'subject': 'STRUCT(reference VARCHAR)', "
        "'code': 'STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])'}) "
        "WHERE starts_with(subject.reference, 'Patient/') AND len([c for c in code.coding "
        f"if c.system = '{SNOMED}' AND c.code = '195967001']) > 0"
    )
    sql = f"SELECT count(DISTINCT p.id) FROM ({patients}) p JOIN ({asthma}) a ON a.pid = p.id"
    if cohort.endswith("weight>20kg"):
        heavy = (
            "SELECT substr(subject.reference, 9) FROM read_json("
            f"{_ndjson(data, 'Observation')}, format='newline_delimited', columns={{"
            "'subject': 'STRUCT(reference VARCHAR)', "
            "'code': 'STRUCT(coding STRUCT(code VARCHAR)[])', "
            "'valueQuantity': 'STRUCT(value DOUBLE, code VARCHAR)'}) "
            "WHERE starts_with(subject.reference, 'Patient/') "
            "AND code.coding[1].code = '29463-7' AND valueQuantity.code = 'kg' "
            "AND valueQuantity.value > 20"
        )
        sql += f" WHERE p.id IN ({heavy})"
    return sql


class Connector:
    """The services of one connector, its dataset and transfer."""

    def __init__(self, services: Services, tid: str, aid: str, dataset: str) -> None:
        self.s = services
        self.tid, self.aid, self.dataset = tid, aid, dataset

    async def pull(self, body: bytes) -> bytes:
        token = token_for(self.s, self.tid, self.aid)

        async def read() -> bytes:
            return body

        result = await self.s.dataplane.pull(
            self.tid, token, body=read, media_type="application/json", params={}
        )
        return b"".join([chunk async for chunk in result.chunks])

    async def forget_answers(self) -> None:
        async with self.s.db.transaction() as conn:
            await conn.execute(aggregate_answers.delete())

    async def views(self) -> FlatViews:
        found = await self.s.views.current(self.dataset, DatasetScope.parse(None))
        assert found is not None, "the flattened tables are not built"
        return found


async def start(work: Path, data: Path) -> tuple[Connector, list[asyncio.Task[None]]]:
    settings = Settings(
        data_dir=work / "connector",
        fhir_files_dir=data,
        public_url="http://127.0.0.1:9",
        dataplane_rate_limit=100_000_000,
        dataplane_rate_window_seconds=1,
        dataplane_wait_seconds=3600,
        fhir_version_cache_seconds=0,
    )
    services = await build_services(settings)
    tasks = [
        asyncio.create_task(services.jobs.run()),
        asyncio.create_task(services.audit.run_chainer()),
    ]
    tid, aid = await seed_transfer(services)
    async with services.db.reading() as conn:
        agreement = await services.stores.agreements.get(conn, aid)
    assert agreement is not None
    return Connector(services, tid, aid, agreement.dataset_id), tasks


def touch(data: Path) -> None:
    """Change the data's version (the file source digests names, sizes and mtimes)."""
    path = sorted(data.glob("Patient.*ndjson*"))[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def report(title: str, timings: dict[str, list[float]], floor: str, target: float) -> None:
    base = statistics.median(timings[floor])
    print(f"\n{title}")
    for label, times in timings.items():
        median = statistics.median(times)
        print(
            f"  {label:12} median {median:9.2f}  best {min(times):9.2f}  ratio {median / base:6.2f}"
        )
    first = next(iter(timings))
    print(
        f"  ratio {first}/{floor}: {statistics.median(timings[first]) / base:.2f} "
        f"(target <= {target})"
    )


async def timed(side: Side, body: bytes) -> float:
    started = time.perf_counter()
    await side(body)
    return (time.perf_counter() - started) * 1000


async def run(args: argparse.Namespace, work: Path, data: Path) -> None:
    import duckdb

    connector, tasks = await start(work, data)
    try:
        started = time.perf_counter()
        await connector.pull(json.dumps(COHORTS["female+asthma"][0]).encode())
        print(f"first call (builds the flattened tables): {time.perf_counter() - started:.1f} s")
        views = await connector.views()
        print(
            f"{views.patients:,} patients; times in ms; load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cpus"
        )
        engine = DuckDbEngine()
        con = duckdb.connect()
        cold_con = duckdb.connect()
        for name, (doc, sql) in COHORTS.items():
            body = json.dumps(doc).encode()
            views = await connector.views()
            truth = engine.evaluate(parse_request(body), views, datetime.now(UTC).date())[0]
            for table in TABLES:
                path = str(views.tables[table]).replace("'", "''")
                con.execute(f"CREATE OR REPLACE VIEW \"{table}\" AS SELECT * FROM '{path}'")
            warm_floor = con.execute(sql).fetchone()
            cold_floor = cold_con.execute(cold_sql(name, data)).fetchone()
            assert warm_floor and cold_floor and truth == warm_floor[0] == cold_floor[0], (
                truth,
                warm_floor,
                cold_floor,
            )
            print(f"\n== {name}: true count {int(truth)} ==")
            await warm(args, connector, con, body, sql, views)
            if args.cold_rounds:
                await cold(args, connector, cold_con, body, cold_sql(name, data), data)
    finally:
        for task in tasks:
            task.cancel()
        await connector.s.aclose()


async def warm(
    args: argparse.Namespace,
    connector: Connector,
    con: Any,
    body: bytes,
    sql: str,
    views: FlatViews,
) -> None:
    store = MemoryAnswerStore()
    fulfilment = AggregateFulfilment(store, SystemClock())

    async def dataplane(body: bytes) -> bytes:
        return await connector.pull(body)

    async def alone(body: bytes) -> bytes:
        request = FulfilmentRequest(
            "bench", "bench", "did:web:bench", views.dataset_id, body, "application/json", {}
        )
        result = await fulfilment.fulfil(request, fulfilment.facts(request), views)
        return b"".join([chunk async for chunk in result.chunks])

    async def floor(body: bytes) -> Any:
        return await asyncio.to_thread(lambda: con.execute(sql).fetchone())

    sides: dict[str, Side] = {"dataplane": dataplane, "fulfilment": alone, "duckdb": floor}
    for side in sides.values():  # warm
        await connector.forget_answers()
        store.clear()
        await side(body)
    timings: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        order = list(sides.items())
        for label, side in order if r % 2 == 0 else reversed(order):
            await connector.forget_answers()  # computed every round, not fetched
            store.clear()
            timings[label].append(await timed(side, body))
    report(f"warm, {args.rounds} rounds", timings, "duckdb", 1.5)


async def cold(
    args: argparse.Namespace, connector: Connector, con: Any, body: bytes, sql: str, data: Path
) -> None:
    async def dataplane(body: bytes) -> bytes:
        touch(data)  # the data changed: the next call builds the tables again
        return await connector.pull(body)

    async def floor(body: bytes) -> Any:
        return await asyncio.to_thread(lambda: con.execute(sql).fetchone())

    sides: dict[str, Side] = {"dataplane": dataplane, "read_json": floor}
    timings: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.cold_rounds):
        order = list(sides.items())
        for label, side in order if r % 2 == 0 else reversed(order):
            timings[label].append(await timed(side, body))
    report(f"cold, {args.cold_rounds} rounds", timings, "read_json", 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15, help="warm rounds")
    parser.add_argument("--cold-rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, help="directory kept for reruns (data, cache)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-aggregate-") as tmp:
        work = args.work or Path(tmp)
        data = work / "fhir"
        marker = work / "patients.txt"
        if not (marker.exists() and marker.read_text() == str(args.patients)):
            shutil.rmtree(data, ignore_errors=True)
            started = time.perf_counter()
            counts = generate(data, patients=args.patients, seed=3, profile="general")
            print(
                f"generated {sum(counts.values()):,} resources in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            marker.write_text(str(args.patients))
        asyncio.run(run(args, work, data))


if __name__ == "__main__":
    main()
