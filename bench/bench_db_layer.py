"""The store's database layer: SQLAlchemy's execution against the asyncpg driver under it
(run by hand, never in the test suite).

    PYTHONPATH=. .venv/bin/python bench/bench_db_layer.py [--ops 3000] [--concurrency 32]

On a fresh PostgreSQL database (dropped at the end), with the connector's own engine
(``connector.db.engine.create_engine``, uvloop as under uvicorn), ``--concurrency`` tasks each
repeat, on its own row:

- ``read``: one ``SELECT ... WHERE id = $1`` on a pooled connection (autocommit), through
  SQLAlchemy (a prebuilt statement, as the store's) and through ``deferred.run``;
- ``locked``: a DSP handler's shape: a transaction with ``SELECT ... FOR UPDATE`` then an
  ``UPDATE``, through SQLAlchemy and with both statements on ``deferred.run`` (the transaction
  still SQLAlchemy's).

It prints operations a second and this process's CPU milliseconds an operation, and the ratio
of each driver variant to its SQLAlchemy baseline measured in the same run (interleaved,
``--rounds`` times). PostgreSQL's own CPU is the same for both (the same statements).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import sqlalchemy as sa
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db import deferred
from connector.db.engine import create_engine, single_statement

ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROWS = sa.Table(
    "bench_rows",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)
_b = sa.bindparam
SA_READ = sa.select(ROWS).where(ROWS.c.id == _b("id"))
SA_LOCK = SA_READ.with_for_update()
SA_UPDATE = (
    ROWS.update()
    .where(ROWS.c.id == _b("_id"))
    .values(state=_b("state"), document=_b("document"), version=_b("version"))
)
PG_READ = "SELECT id, state, document, version FROM bench_rows WHERE id = $1"
PG_LOCK = PG_READ + " FOR UPDATE"
PG_UPDATE = "UPDATE bench_rows SET state = $2, document = $3, version = $4 WHERE id = $1"

Op = Callable[[AsyncEngine, str], Awaitable[None]]


async def sa_read(engine: AsyncEngine, id: str) -> None:
    async with single_statement(engine) as conn:
        (await conn.execute(SA_READ, {"id": id})).one()


async def driver_read(engine: AsyncEngine, id: str) -> None:
    async with single_statement(engine) as conn:
        [_] = await deferred.run(conn, PG_READ, (id,))


async def sa_locked(engine: AsyncEngine, id: str) -> None:
    async with engine.begin() as conn:
        row = (await conn.execute(SA_LOCK, {"id": id})).one()
        params = {"_id": id, "state": "B", "document": row.document, "version": row.version + 1}
        await conn.execute(SA_UPDATE, params)


async def driver_locked(engine: AsyncEngine, id: str) -> None:
    async with engine.begin() as conn:
        [row] = await deferred.run(conn, PG_LOCK, (id,))
        args = (id, "B", row[2], row[3] + 1)
        await deferred.run(conn, PG_UPDATE, args, fetch=False)


async def measure(engine: AsyncEngine, op: Op, ops: int, concurrency: int) -> tuple[float, float]:
    """(operations a second, CPU ms an operation of this process)."""
    each = max(1, ops // concurrency)

    async def worker(i: int) -> None:
        for _ in range(each):
            await op(engine, f"row-{i}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = each * concurrency
    return done / wall, 1000 * cpu / done


async def setup(engine: AsyncEngine, concurrency: int) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(ROWS.metadata.create_all)
        rows = [
            {"id": f"row-{i}", "state": "A", "document": "x" * 800, "version": 0}
            for i in range(concurrency)
        ]
        await conn.execute(ROWS.insert(), rows)


async def main_async(args: argparse.Namespace, url: str) -> None:
    engine = create_engine(url, pool_size=args.concurrency + 8)
    try:
        await setup(engine, args.concurrency)
        pairs: list[tuple[str, Op, Op]] = [
            ("read", sa_read, driver_read),
            ("locked", sa_locked, driver_locked),
        ]
        results: dict[str, list[tuple[float, float, float, float]]] = {p[0]: [] for p in pairs}
        for _name, base, fast in pairs:  # warm up: connections, prepared statements
            await measure(engine, base, args.concurrency * 4, args.concurrency)
            await measure(engine, fast, args.concurrency * 4, args.concurrency)
        for _ in range(args.rounds):
            for name, base, fast in pairs:
                b_rate, b_cpu = await measure(engine, base, args.ops, args.concurrency)
                f_rate, f_cpu = await measure(engine, fast, args.ops, args.concurrency)
                results[name].append((b_rate, b_cpu, f_rate, f_cpu))
    finally:
        await engine.dispose()
    print(
        f"\nDatabase layer, {args.ops} operations x {args.rounds} rounds at "
        f"{args.concurrency} concurrent, {os.cpu_count()} cpus (medians)"
    )
    print(
        "| operation | SQLAlchemy /s | SQLAlchemy CPU ms | driver /s | driver CPU ms "
        "| CPU driver / SQLAlchemy |"
    )
    print("|---|---|---|---|---|---|")
    for name, rows in results.items():
        b_rate, b_cpu, f_rate, f_cpu = (statistics.median(col) for col in zip(*rows, strict=True))
        print(
            f"| {name} | {b_rate:.0f} | {b_cpu:.3f} | {f_rate:.0f} | {f_cpu:.3f} "
            f"| {f_cpu / b_cpu:.2f} |"
        )


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=3000, help="operations a measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    name = f"bench_db_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        uvloop.run(main_async(args, f"{base}/{name}"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
