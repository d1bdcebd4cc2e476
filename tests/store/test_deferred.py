"""Writes held to the end of a store transaction (one statement on PostgreSQL) behave exactly
like writes run at once: read-your-writes, order, all-or-nothing. Runs on both databases."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from connector.audit import AuditLog
from connector.clock import FixedClock
from connector.db import deferred
from connector.db.tables import agreements, audit_pending, negotiations, outbox
from connector.dsp.agreement import AgreementRecord
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role
from tests.store.stores import SqlStores, sql_stores

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _negotiation(id: str) -> Negotiation:
    n = Negotiation.new(
        id=id,
        role=Role.PROVIDER,
        counterparty_did="did:web:c",
        now=T0,
        counterparty_address="http://c/dsp",
        provider_pid=id,
        consumer_pid=f"c-{id}",
    )
    return replace(n, offer={"@id": "o", "target": "ds"})


def _agreement(id: str, negotiation_id: str) -> AgreementRecord:
    return AgreementRecord(
        id=id,
        negotiation_id=negotiation_id,
        role=Role.PROVIDER,
        dataset_id="ds",
        provider_did="did:web:p",
        consumer_did="did:web:c",
        agreement={"@id": id},
        provider_signature="p",
        consumer_signature="c",
        uses=0,
        epsilon_spent=0.0,
        created_at=T0,
    )


async def _enqueue(store: SqlStores, conn: object, process: str, kind: str) -> None:
    await store.outbox.enqueue(
        conn,  # type: ignore[arg-type]
        process_kind="negotiation",
        process_id=process,
        message_type=kind,
        url="http://c/dsp",
        audience="did:web:c",
        body={"kind": kind},
        now=T0,
    )


async def _count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_a_handlers_writes_all_land_and_are_read_back_inside(engine: AsyncEngine) -> None:
    store, audit = sql_stores(engine), AuditLog(engine, FixedClock(T0))
    n = _negotiation("urn:uuid:n1")
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, n)
        await _enqueue(store, conn, n.id, "agreement")
        await _enqueue(store, conn, "urn:uuid:other", "event")
        await store.agreements.insert(conn, _agreement("urn:uuid:a1", n.id))
        await audit.append_many(conn, [{"actor": "did:web:c", "event": "negotiation.agreed"}])
        # Read-your-writes: a read in the same transaction sees the held insert...
        assert await store.negotiations.get(conn, n.id) == n
        # ...and writes after the read are held again and land too.
        agreed = replace(n, state=NegotiationState.AGREED, updated_at=T0 + timedelta(seconds=1))
        await store.negotiations.update(conn, agreed)
        await audit.append_many(conn, [{"actor": "did:web:c", "event": "negotiation.second"}])
        await audit.append_many(conn, [{"actor": "did:web:c", "event": "negotiation.third"}])
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, n.id) == agreed
        assert await store.agreements.get(conn, "urn:uuid:a1") is not None
        assert await store.outbox.pending(conn, n.id) == 1
    assert await _count(engine, outbox) == 2
    assert await audit.flush() == 3
    events = [e.event async for e in audit.entries()]
    assert events == ["negotiation.agreed", "negotiation.second", "negotiation.third"]


async def test_a_failing_transaction_leaves_none_of_its_held_writes(engine: AsyncEngine) -> None:
    store, audit = sql_stores(engine), AuditLog(engine, FixedClock(T0))
    n = _negotiation("urn:uuid:n2")
    with pytest.raises(RuntimeError, match="handler failed"):
        async with store.db.transaction() as conn:
            await store.negotiations.insert(conn, n)
            await _enqueue(store, conn, n.id, "agreement")
            await audit.append_many(conn, [{"actor": "did:web:c", "event": "x"}])
            raise RuntimeError("handler failed")
    for table in (negotiations, outbox, audit_pending, agreements):
        assert await _count(engine, table) == 0


async def test_a_held_write_that_violates_a_constraint_takes_the_others_with_it(
    engine: AsyncEngine,
) -> None:
    store = sql_stores(engine)
    n = _negotiation("urn:uuid:n3")
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, n)
    with pytest.raises(sa.exc.IntegrityError):
        async with store.db.transaction() as conn:
            await _enqueue(store, conn, "urn:uuid:n3", "agreement")
            await store.agreements.insert(conn, _agreement("urn:uuid:a3", n.id))
            await store.negotiations.insert(conn, n)  # the same id again
    assert await _count(engine, outbox) == 0
    assert await _count(engine, agreements) == 0
    assert await _count(engine, negotiations) == 1


async def test_a_processs_messages_keep_their_queue_order(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    async with store.db.transaction() as conn:
        for kind in ("first", "second", "third"):
            await _enqueue(store, conn, "urn:uuid:p", kind)
    order = []
    for _ in range(3):
        [item] = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
        order.append(item.message_type)
        await store.outbox.mark_sent(None, item.id, T0)
    assert order == ["first", "second", "third"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # deferred writes are PG's
async def test_a_transaction_of_held_writes_only_is_one_statement_without_begin_and_commit(
    engine: AsyncEngine,
) -> None:
    """What the connection sends (asyncpg's query log, which shows what runs on the driver
    itself, not what SQLAlchemy's adapter prepares: BEGIN and COMMIT, the store's hot reads
    and held writes): the combined statement alone
    for a write-only transaction; BEGIN ... COMMIT as soon as the transaction also reads."""
    store, audit = sql_stores(engine), AuditLog(engine, FixedClock(T0))
    seen: list[str] = []

    def log(record: object) -> None:
        seen.append(str(getattr(record, "query", "")).split()[0].upper().rstrip(";"))

    async with engine.connect() as probe:
        raw = await probe.get_raw_connection()
        driver = raw.driver_connection
    # The pool hands the same (only idle) connection to the store below.
    driver.add_query_logger(log)
    try:
        for i in (1, 2):  # a single held write, then several combined
            async with store.db.transaction() as conn:
                n = _negotiation(f"urn:uuid:w{i}")
                await store.negotiations.insert(conn, n)
                if i == 2:
                    await _enqueue(store, conn, n.id, "request")
                    await audit.append_many(conn, [{"actor": "did:web:c", "event": "e"}])
        assert seen == ["INSERT", "WITH"], seen
        seen.clear()
        async with store.db.transaction() as conn:
            assert await store.negotiations.get(conn, "urn:uuid:w1") is not None
            await _enqueue(store, conn, "urn:uuid:w1", "more")
        # The read and the held write run on the driver too (connector/db/deferred.run).
        assert seen == ["BEGIN", "SELECT", "INSERT", "COMMIT"], seen
    finally:
        driver.remove_query_logger(log)
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, "urn:uuid:w2") is not None
        assert await store.outbox.pending(conn, "urn:uuid:w2") == 1
    assert await audit.flush() == 1


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("reads_first", [False, True], ids=["write-only", "read-first"])
async def test_a_transaction_on_a_dead_connection_fails_once_and_the_pool_recovers(
    engine: AsyncEngine, reads_first: bool
) -> None:
    """The database restarted under an idle pooled connection: the transaction's first
    statement (the write-only one, or a read) fails as SQLAlchemy reports it (a DBAPIError,
    the connection invalidated; not a PendingRollbackError from the clean-up), and the next
    transaction gets a new connection."""
    store = sql_stores(engine)
    async with store.db.transaction() as conn:  # a pooled connection exists
        await store.negotiations.insert(conn, _negotiation("urn:uuid:before"))
    other = create_async_engine(engine.url.render_as_string(hide_password=False))
    try:
        async with other.connect() as admin:
            await admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await other.dispose()
    with pytest.raises(sa.exc.DBAPIError) as failed:
        # The pool hands out the connection whose backend is gone.
        async with store.db.transaction() as conn:
            if reads_first:
                await store.negotiations.get(conn, "urn:uuid:before")
            await store.negotiations.insert(conn, _negotiation("urn:uuid:lost"))
    assert failed.value.connection_invalidated
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, _negotiation("urn:uuid:after"))
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, "urn:uuid:after") is not None
        assert await store.negotiations.get(conn, "urn:uuid:lost") is None


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_statements_on_the_driver_share_sqlalchemys_transaction(engine: AsyncEngine) -> None:
    """``deferred.run`` begins the transaction as SQLAlchemy would: a run write is rolled back
    with the transaction and committed with it; on an autocommit connection it commits alone."""
    insert = "INSERT INTO outbox_probe (v) VALUES ($1)"
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS outbox_probe (v int)"))
        await conn.execute(sa.text("DELETE FROM outbox_probe"))
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await deferred.run(conn, insert, (1,), fetch=False)
            # SQLAlchemy's statements see it: the same transaction.
            seen = await conn.execute(sa.text("SELECT count(*) FROM outbox_probe"))
            assert seen.scalar_one() == 1
            raise RuntimeError("the handler failed")
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO outbox_probe (v) VALUES (2)"))
        await deferred.run(conn, insert, (3,), fetch=False)
    async with engine.connect() as plain:
        auto = await plain.execution_options(isolation_level="AUTOCOMMIT")
        await deferred.run(auto, insert, (4,), fetch=False)
    async with engine.connect() as conn:
        rows = await deferred.run(conn, "SELECT v FROM outbox_probe ORDER BY v", ())
        assert [r[0] for r in rows] == [2, 3, 4]
        await conn.rollback()
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE outbox_probe"))


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
async def test_a_statement_cancelled_on_the_driver_drops_its_connection(
    engine: AsyncEngine,
) -> None:
    """A task cancelled mid-statement (a sender stopping, say) leaves the connection in an
    unknown state: it is invalidated, as on SQLAlchemy's path, and the next checkout gets a
    working one. (A connection left open would also fail this run: pytest reports its socket
    as an unclosed resource.)"""
    started = asyncio.Event()
    backends: list[int] = []

    async def slow() -> None:
        async with engine.connect() as conn:
            [(pid,)] = await deferred.run(conn, "SELECT pg_backend_pid()", ())
            backends.append(pid)
            started.set()
            await deferred.run(conn, "SELECT pg_sleep(10)", ())

    task = asyncio.create_task(slow())
    await started.wait()
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        [(pid,)] = await deferred.run(conn, "SELECT pg_backend_pid()", ())
    assert pid != backends[0]  # a new connection: the cancelled one was closed
