"""DSP negotiation benchmark (run by hand, never in the test suite).

    PYTHONPATH=. .venv/bin/python bench/bench_negotiation.py [--levels 1,8,32] [--seconds 10]

Starts two real connectors (``python -m connector serve``) on loopback, each on a fresh
PostgreSQL database, the consumer holding a membership credential from a throw-away authority;
publishes one dataset on the provider; then, for each concurrency level, keeps that many
negotiations in flight against the consumer's management API (``POST /management/negotiations``)
and counts those that reach FINALIZED on the consumer side. One negotiation is 4 DSP messages
(request, agreement, verification, finalized event), each with a self-issued token verified by
the receiver, and 2 agreement signatures plus their 2 verifications.

Completion is observed without polling the connector: a trigger added (by this script) to the
consumer's database sends ``pg_notify`` when a negotiation row turns FINALIZED or TERMINATED,
and the script LISTENs. Latency is from the POST to that notification.

Beside it, in the same run and at the same concurrency, the *floor*: the same 5 HTTP round
trips (the management POST and the 4 DSP messages: 3 to the consumer, 2 to the provider) to
``GET /healthz`` of the same two processes, plus the same signing and verifying done in this
process with the connector's own code and the connectors' own keys: 4 tokens issued and
verified (``TokenIssuer`` / ``TokenVerifier``, the consumer's carrying its credential), 2
agreements signed and verified. The floor has no database and no state machine.

With ``--durable-floor``, a third side: the floor plus the least a negotiation must commit,
one statement on the receiving connector's database (from this process, autocommit, so
durable before the "answer") at each of the 5 points where a connector records a message:
an INSERT of a row on the management POST (consumer) and on the request (provider), an UPDATE
of it on the agreement and the finalized event (consumer) and on the verification (provider),
each row carrying the document a negotiation has at that point (offer, agreement, signatures;
about 3 KB at the end, as ours). No outbox, no audit, no replay guard, no reads.

Everything it starts (processes, databases) is stopped or dropped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

from connector.clock import SystemClock
from connector.identity.agreements import (
    SIGNATURE_PROPERTY,
    sign_agreement,
    verify_agreement_signature,
)
from connector.identity.credentials import issue_credential
from connector.identity.did import did_key_from_public_jwk
from connector.identity.keys import load_or_create_keys
from connector.identity.resolver import DidResolver
from connector.identity.signing import generate_key
from connector.identity.tokens import TokenIssuer, TokenVerifier
from tests.conftest import free_port
from tests.e2e.conftest import dataset as e2e_dataset
from tests.processes import ConnectorProcess, start_connector, stop

ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHANNEL = "bench_negotiation_done"
OFFER = {
    "@id": "offer-research",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                {"leftOperand": "phems:membership", "operator": "eq", "rightOperand": True},
            ],
        }
    ],
}
TRIGGER = f"""
CREATE OR REPLACE FUNCTION bench_notify_done() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', NEW.id || ' ' || NEW.state);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER bench_done AFTER UPDATE OF state ON negotiations FOR EACH ROW
  WHEN (NEW.state IN ('FINALIZED', 'TERMINATED') AND OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION bench_notify_done();
"""


class InMemoryReplayGuard:
    """The floor's replay guard: the same check, no database."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    async def remember(self, jti: str, expires_at: datetime) -> bool:
        if jti in self._seen:
            return False
        self._seen.add(jti)
        return True


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class CpuMeter:
    """CPU time of the two connectors, their PostgreSQL backends and this process: with other
    work on the machine, CPU per negotiation says more than wall-clock rate."""

    def __init__(self, connectors: dict[str, int], databases: tuple[str, ...]) -> None:
        self.connectors = connectors
        self.databases = databases

    async def snapshot(self) -> dict[str, float]:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)", list(self.databases)
            )
        finally:
            await conn.close()
        out = {name: cpu_seconds(pid) for name, pid in self.connectors.items()}
        # Per backend: pooled connections come and go (overflow ones close when returned).
        out |= {f"pg:{r['pid']}": cpu_seconds(r["pid"]) for r in rows}
        out["bench"] = time.process_time()
        return out

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds between two snapshots; a backend that exited in between is lost (an
        under-estimate), one that started counts from zero."""
        spent = {k: after[k] - before[k] for k in after if not k.startswith("pg:")}
        spent["postgres"] = sum(
            v - before.get(k, 0.0) for k, v in after.items() if k.startswith("pg:")
        )
        return spent


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_ms(self, *names: str) -> float:
        """CPU milliseconds per completed operation of the named parts."""
        done = len(self.latencies)
        return 1000 * sum(self.cpu.get(n, 0.0) for n in names) / done if done else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def db_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://postgres@127.0.0.1:5432/{name}"


async def run_level(
    concurrency: int,
    seconds: float,
    one: Callable[[], Awaitable[bool]],
    name: str,
    meter: CpuMeter | None = None,
) -> Result:
    """``concurrency`` workers each running ``one()`` back to back until ``seconds`` are up."""
    result = Result(name, concurrency)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                ok = await one()
            except aiohttp.ClientError as exc:
                print(f"{name}: {exc!r}", file=sys.stderr)
                ok = False
            if ok:
                result.latencies.append(time.perf_counter() - t0)
            else:
                result.failures += 1

    before = await meter.snapshot() if meter else {}
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    if meter:
        after = await meter.snapshot()
        result.cpu = CpuMeter.spent(before, after)
    return result


class Bench:
    def __init__(
        self, provider: ConnectorProcess, consumer: ConnectorProcess, session: aiohttp.ClientSession
    ) -> None:
        self.provider = provider
        self.consumer = consumer
        self.session = session
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.offer: dict[str, Any] = {}
        # The durable floor's connections to each connector's database (open_durable).
        self.pools: dict[str, asyncpg.Pool] = {}
        self.p_pool: asyncpg.Pool | None = None
        self.c_pool: asyncpg.Pool | None = None
        clock = SystemClock()
        self._http = httpx.AsyncClient(timeout=10)
        resolver = DidResolver(
            self._http,
            clock,
            insecure_hosts=[provider.url.split("//")[1], consumer.url.split("//")[1]],
        )
        self.resolver = resolver
        pkeys = load_or_create_keys(provider.data_dir / "keys")
        ckeys = load_or_create_keys(consumer.data_dir / "keys")
        creds = [p.read_text().strip() for p in (consumer.data_dir / "credentials").glob("*.jwt")]
        self.pkey, self.ckey = pkeys.signing, ckeys.signing
        self.p_issuer = TokenIssuer(provider.did, pkeys, 60, [], clock)
        self.c_issuer = TokenIssuer(consumer.did, ckeys, 60, creds, clock)
        trusted = [os.environ["BENCH_AUTHORITY"]]
        self.p_verifier = TokenVerifier(
            resolver, InMemoryReplayGuard(), trusted, provider.did, clock
        )
        self.c_verifier = TokenVerifier(
            resolver, InMemoryReplayGuard(), trusted, consumer.did, clock
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        id, _, state = str(payload).partition(" ")
        future = self.waiting.pop(id, None)
        if future is not None and not future.done():
            future.set_result(state)

    async def setup(self) -> None:
        headers = {"X-Api-Key": self.provider.api_key}
        # The same fully described (HealthDCAT-AP valid) dataset the end-to-end tests publish.
        dataset = e2e_dataset("paediatric-asthma", [OFFER])
        url = self.provider.url + "/management/datasets"
        async with self.session.post(url, json=dataset, headers=headers) as r:
            assert r.status == 201, await r.text()
        url = self.consumer.url + "/management/catalog/request"
        body = {"counterpartyAddress": self.provider.url + "/dsp/2025-1"}
        async with self.session.post(url, json=body, headers=self._cheaders) as r:
            catalog = await r.json()
        [ds] = catalog["dataset"]
        self.offer = ds["hasPolicy"][0] | {"target": ds["@id"]}

    @property
    def _cheaders(self) -> dict[str, str]:
        return {"X-Api-Key": self.consumer.api_key}

    async def negotiation(self) -> bool:
        body = {"counterpartyAddress": self.provider.url + "/dsp/2025-1", "offer": self.offer}
        url = self.consumer.url + "/management/negotiations"
        async with self.session.post(url, json=body, headers=self._cheaders) as r:
            if r.status != 201:
                print("create failed:", r.status, await r.text(), file=sys.stderr)
                return False
            id = (await r.json())["id"]
        future = asyncio.get_running_loop().create_future()
        self.waiting[id] = future
        try:
            state = await asyncio.wait_for(future, 60)
        except TimeoutError:
            self.waiting.pop(id, None)
            print("negotiation timed out:", id, file=sys.stderr)
            return False
        if state != "FINALIZED":
            print("negotiation", id, state, file=sys.stderr)
        return bool(state == "FINALIZED")

    async def open_durable(self, provider_db: str, consumer_db: str) -> None:
        for name in (provider_db, consumer_db):
            # Small: the connectors' pools (2 x 40 open) leave about 15 of PostgreSQL's 100.
            pool = await asyncpg.create_pool(db_url(name, "postgresql"), min_size=6, max_size=6)
            await pool.execute(
                "CREATE TABLE IF NOT EXISTS bench_floor (id text PRIMARY KEY, state text "
                "NOT NULL, document text NOT NULL)"
            )
            self.pools[name] = pool
        self.p_pool, self.c_pool = self.pools[provider_db], self.pools[consumer_db]

    async def close_durable(self) -> None:
        for pool in self.pools.values():
            await pool.close()

    async def durable_floor(self) -> bool:
        """The floor plus one durable statement where each of the 5 messages is recorded."""
        return await self.floor(durable=True)

    async def floor(self, durable: bool = False) -> bool:
        """5 round trips to a trivial endpoint + the same signing and verifying."""
        c, p = self.consumer.url + "/healthz", self.provider.url + "/healthz"

        async def trip(url: str) -> None:
            async with self.session.get(url) as r:
                await r.read()

        agreement = {
            "@id": f"urn:uuid:{uuid.uuid4()}",
            "@type": "Agreement",
            "target": "paediatric-asthma",
            "assigner": self.provider.did,
            "assignee": self.consumer.did,
            "timestamp": datetime.now(UTC).isoformat(),
            "permission": OFFER["permission"],
        }
        id = str(agreement["@id"])
        doc: dict[str, Any] = {"offer": self.offer}

        async def record(pool: asyncpg.Pool | None, state: str, insert: bool = False) -> None:
            if not durable:
                return
            assert pool is not None, "open_durable() first"
            text = json.dumps(doc)
            if insert:
                sql = "INSERT INTO bench_floor (id, state, document) VALUES ($1, $2, $3)"
            else:
                sql = "UPDATE bench_floor SET state = $2, document = $3 WHERE id = $1"
            await pool.execute(sql, id, state, text)

        await trip(c)  # management POST
        await record(self.c_pool, "REQUESTED", insert=True)
        await self.p_verifier.verify(self.c_issuer.issue(self.provider.did))  # request
        await trip(p)
        provider_sig = sign_agreement(agreement, self.provider.did, self.pkey)  # agreement
        doc |= {"agreement": agreement | {SIGNATURE_PROPERTY: provider_sig}}
        doc |= {"provider_signature": provider_sig}
        await record(self.p_pool, "AGREED", insert=True)
        await self.c_verifier.verify(self.p_issuer.issue(self.consumer.did))
        await trip(c)
        await verify_agreement_signature(
            agreement | {SIGNATURE_PROPERTY: provider_sig}, self.provider.did, self.resolver
        )
        consumer_sig = sign_agreement(agreement, self.consumer.did, self.ckey)  # verification
        doc |= {"consumer_signature": consumer_sig}
        await record(self.c_pool, "VERIFIED")
        await self.p_verifier.verify(self.c_issuer.issue(self.provider.did))
        await trip(p)
        await verify_agreement_signature(
            agreement, self.consumer.did, self.resolver, signature=consumer_sig
        )
        await record(self.p_pool, "FINALIZED")
        await self.c_verifier.verify(self.p_issuer.issue(self.consumer.did))  # finalized
        await trip(c)
        await record(self.c_pool, "FINALIZED")
        return True


async def count_rows(url: str, table: str, where: str = "") -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table} {where}"))
    finally:
        await conn.close()


async def xact_commits(database: str) -> int:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"
        return int(await conn.fetchval(query, database))
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace, provider_db: str, consumer_db: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-negotiation-"))
    authority = generate_key("Ed25519")
    authority_did = did_key_from_public_jwk(authority.public_jwk())
    os.environ["BENCH_AUTHORITY"] = authority_did
    pp, pc = free_port(), free_port()
    consumer_did = f"did:web:127.0.0.1%3A{pc}"
    now = datetime.now(UTC)
    credential = issue_credential(
        authority_did,
        authority,
        consumer_did,
        "MembershipCredential",
        {},
        now - timedelta(minutes=1),
        now + timedelta(days=1),
        SystemClock(),
    )
    common = {
        "PHEMS_TRUSTED_ISSUERS": authority_did,
        "PHEMS_INSECURE_DID_HOSTS": f"127.0.0.1:{pp},127.0.0.1:{pc}",
        "PHEMS_LOG_LEVEL": "WARNING",
        # 32 negotiations in flight hold more than the default 10 + 20 connections at times
        # (the consumer up to 41); a request that waits for a connection waits for the slowest
        # holder. Until session 9 overflow connections closed on return and reopened at the
        # next peak (a new PostgreSQL backend each); now the pool keeps them.
        "PHEMS_DATABASE_POOL_SIZE": "40",
        # Both connectors' pools together (2 x (40 + 5)) stay below PostgreSQL's default
        # max_connections (100): with the default overflow (20) a slow minute once opened
        # more, and the refused connections ("too many clients") failed requests.
        "PHEMS_DATABASE_MAX_OVERFLOW": "5",
        **dict(kv.split("=", 1) for kv in args.env),
    }
    (tmp / "consumer" / "credentials").mkdir(parents=True)
    (tmp / "consumer" / "credentials" / "membership.jwt").write_text(credential)
    started: list[ConnectorProcess] = []
    try:
        provider = start_connector(
            tmp / "provider", pp, common | {"PHEMS_DATABASE_URL": db_url(provider_db)}
        )
        started.append(provider)
        consumer = start_connector(
            tmp / "consumer", pc, common | {"PHEMS_DATABASE_URL": db_url(consumer_db)}
        )
        started.append(consumer)
        for c in started:
            print(f"{c.url} pid {c.proc.pid}", file=sys.stderr)
        listener = await asyncpg.connect(db_url(consumer_db, "postgresql"))
        await listener.execute(TRIGGER)
        # Below uvicorn keep-alive (5 s): a reused connection is never one the server closes.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            bench = Bench(provider, consumer, session)
            await listener.add_listener(CHANNEL, bench.on_notify)
            try:
                await bench.setup()
                # Warm up: connections, did:web caches, JIT-free but import-heavy first calls.
                await run_level(4, args.warmup, bench.negotiation, "warmup")
                await run_level(4, 1, bench.floor, "warmup")
                meter = CpuMeter(
                    {"provider": provider.proc.pid, "consumer": consumer.proc.pid},
                    (provider_db, consumer_db),
                )
                # The durable floor's own commits, not counted as the negotiations'.
                durable_commits = [0, 0]

                async def durable(level: int, meter: CpuMeter | None = None) -> Result:
                    before = [await xact_commits(d) for d in (provider_db, consumer_db)]
                    result = await run_level(
                        level,
                        args.seconds if meter else 1,
                        bench.durable_floor,
                        "durable floor" if meter else "warmup",
                        meter,
                    )
                    after = [await xact_commits(d) for d in (provider_db, consumer_db)]
                    for i in range(2):
                        durable_commits[i] += after[i] - before[i]
                    return result

                if args.durable_floor:
                    await bench.open_durable(provider_db, consumer_db)
                    await durable(4)
                results: list[tuple[Result, Result, Result | None]] = []
                for level in args.levels:
                    if args.pause_before:
                        print(f"level {level}: starting", file=sys.stderr, flush=True)
                    # Unmeasured, at this level's concurrency: the pools open the connections
                    # it needs first (each new PostgreSQL connection costs the server several
                    # ms: asyncpg's type introspection, every statement prepared again).
                    await run_level(level, args.level_warmup, bench.negotiation, "warmup")
                    neg = await run_level(
                        level, args.seconds, bench.negotiation, "negotiation", meter
                    )
                    flo = await run_level(level, args.seconds, bench.floor, "floor", meter)
                    dur = None
                    if args.durable_floor:
                        await durable(level)
                        dur = await durable(level, meter)
                    results.append((neg, flo, dur))
                    print(
                        f"  c={level}: {neg.rate:.1f}/s vs floor {flo.rate:.1f}/s"
                        + (f", durable floor {dur.rate:.1f}/s" if dur else ""),
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                await bench.close_durable()
                await bench.aclose()
                await listener.close()
        finalized = await count_rows(
            db_url(consumer_db, "postgresql"), "negotiations", "WHERE state = 'FINALIZED'"
        )
        agreements = [
            await count_rows(db_url(d, "postgresql"), "agreements")
            for d in (provider_db, consumer_db)
        ]
        commits = [
            await xact_commits(d) - durable_commits[i]
            for i, d in enumerate((provider_db, consumer_db))
        ]
    finally:
        for c in reversed(started):
            stop(c.proc)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(results, args, finalized, agreements, commits)


def print_table(
    results: list[tuple[Result, Result, Result | None]],
    args: argparse.Namespace,
    finalized: int,
    agreements: list[int],
    commits: list[int],
) -> None:
    load = os.getloadavg()
    print(
        f"\nDSP negotiations, {args.seconds:g}s a level, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cpus"
    )
    print(
        "| concurrent | negotiations/s | p50 ms | p99 ms | failed "
        "| floor/s | floor p50 ms | floor p99 ms | floor / ours |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for neg, flo, _ in results:
        ratio = flo.rate / neg.rate if neg.rate else float("inf")
        print(
            f"| {neg.concurrency} | {neg.rate:.1f} | {neg.pct(0.5):.1f} | {neg.pct(0.99):.1f} "
            f"| {neg.failures} | {flo.rate:.1f} | {flo.pct(0.5):.1f} | {flo.pct(0.99):.1f} "
            f"| {ratio:.2f} |"
        )
    print("\nCPU milliseconds per negotiation (per floor operation)")
    print(
        "| concurrent | provider | consumer | postgres | bench | all "
        "| floor: connectors | floor: bench | floor: all |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    parts = ("provider", "consumer", "postgres", "bench")
    for neg, flo, _ in results:
        print(
            f"| {neg.concurrency} | "
            + " | ".join(f"{neg.cpu_ms(p):.1f}" for p in parts)
            + f" | {neg.cpu_ms(*parts):.1f} | {flo.cpu_ms('provider', 'consumer'):.1f} "
            f"| {flo.cpu_ms('bench'):.1f} | {flo.cpu_ms(*parts):.1f} |"
        )
    if any(dur for _, _, dur in results):
        print("\nDurable floor: the floor + one durable statement per recorded message (5)")
        print(
            "| concurrent | durable floor/s | p50 ms | p99 ms | durable floor / ours "
            "| CPU ms: connectors | postgres | bench | all |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for neg, _, dur in results:
            if dur is None:
                continue
            ratio = dur.rate / neg.rate if neg.rate else float("inf")
            print(
                f"| {dur.concurrency} | {dur.rate:.1f} | {dur.pct(0.5):.1f} "
                f"| {dur.pct(0.99):.1f} | {ratio:.2f} "
                f"| {dur.cpu_ms('provider', 'consumer'):.1f} | {dur.cpu_ms('postgres'):.1f} "
                f"| {dur.cpu_ms('bench'):.1f} | {dur.cpu_ms(*parts):.1f} |"
            )
    print(
        f"consumer FINALIZED rows: {finalized}; agreements provider/consumer: "
        f"{agreements[0]}/{agreements[1]}; transactions a negotiation (all commits, incl. "
        f"read-only and start-up) provider/consumer: {commits[0] / max(finalized, 1):.1f}/"
        f"{commits[1] / max(finalized, 1):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,8,32", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", default=10.0, type=float, help="per level and side")
    parser.add_argument("--warmup", default=2.0, type=float)
    parser.add_argument(
        "--level-warmup", default=2.0, type=float, help="unmeasured seconds before each level"
    )
    parser.add_argument("--env", action="append", default=[], help="extra PHEMS_X=Y for both")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument("--pause-before", action="store_true", help="announce each level")
    parser.add_argument(
        "--durable-floor",
        action="store_true",
        help="also run the floor with one durable statement per recorded message",
    )
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    provider_db, consumer_db = f"bench_neg_p_{suffix}", f"bench_neg_c_{suffix}"
    for name in (provider_db, consumer_db):
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(main_async(args, provider_db, consumer_db))
    finally:
        for name in (provider_db, consumer_db):
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
