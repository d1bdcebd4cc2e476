"""PostgreSQL: in an optimistic transaction (``Database.attempt``) a negotiation read
``for_change`` is not locked but written only if unchanged since the read; a change in between
fails the write with ``ChangedSinceRead`` and then nothing of its transaction is written: not
the outbox message combined with it in one statement, nor what an earlier statement of a begun
transaction wrote. A writer holding the row when the write arrives makes it wait, and it fails
once that writer commits. ``attempt`` runs the work again, then gives up with a 409."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.db.database import ATTEMPTS
from connector.db.deferred import ChangedSinceRead
from connector.db.tables import negotiations, outbox
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState
from connector.errors import ConflictError
from tests.store.stores import SqlStores, sql_stores
from tests.store.test_dsp_store import T0, _negotiation

ID = "urn:uuid:n1"


@pytest.fixture
def store(pg_engine: AsyncEngine) -> SqlStores:
    return sql_stores(pg_engine)


async def _stored(store: SqlStores) -> Negotiation:
    n = replace(_negotiation(), state=NegotiationState.REQUESTED)
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, n)
    return n


async def _for_change(store: SqlStores, conn: AsyncConnection) -> Negotiation:
    n = await store.negotiations.get(conn, ID, for_change=True)
    assert n is not None
    return n


async def _bump(engine: AsyncEngine) -> None:
    """Another writer: a new version of the row, its content unchanged."""
    async with engine.begin() as conn:
        await conn.execute(
            negotiations.update().values(updated_at=negotiations.c.updated_at),
        )


async def _version(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        query = sa.text("SELECT xmin::text FROM negotiations WHERE id = :id")
        return str((await conn.execute(query, {"id": ID})).scalar_one())


async def _enqueue(store: SqlStores, conn: AsyncConnection) -> None:
    await store.outbox.enqueue(
        conn,
        process_kind="negotiation",
        process_id=ID,
        message_type="ContractAgreementVerificationMessage",
        url="http://p/dsp/negotiations/urn:uuid:p1/agreement/verification",
        audience="did:web:p",
        body={"m": 1},
        now=T0,
    )


async def _outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar())


async def _state(store: SqlStores) -> NegotiationState:
    async with store.db.reading() as conn:
        n = await store.negotiations.get(conn, ID)
    assert n is not None
    return n.state


async def test_an_unchanged_row_is_written_with_what_goes_with_it(store: SqlStores) -> None:
    await _stored(store)
    before = await _version(store.db.engine)
    async with store.db.transaction(optimistic=True) as conn:
        n = await _for_change(store, conn)
        await _enqueue(store, conn)
        await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
    assert await _state(store) is NegotiationState.VERIFIED
    assert await _outbox_rows(store.db.engine) == 1
    assert await _version(store.db.engine) != before  # the write made a new version


async def test_a_changed_row_fails_the_statement_and_writes_nothing(store: SqlStores) -> None:
    await _stored(store)
    with pytest.raises(ChangedSinceRead, match=f"negotiation {ID} changed since it was read"):
        async with store.db.transaction(optimistic=True) as conn:
            n = await _for_change(store, conn)
            await _bump(store.db.engine)
            await _enqueue(store, conn)  # combined with the update in one statement
            await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
    assert await _state(store) is NegotiationState.REQUESTED
    assert await _outbox_rows(store.db.engine) == 0


async def test_a_changed_row_rolls_back_a_begun_transaction(store: SqlStores) -> None:
    await _stored(store)
    with pytest.raises(ChangedSinceRead):
        async with store.db.transaction(optimistic=True) as conn:
            n = await _for_change(store, conn)
            await _bump(store.db.engine)
            await _enqueue(store, conn)
            # A read sends the held outbox insert on its own, in a transaction begun for it.
            assert await store.negotiations.approval(conn, n.id) is None
            await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
    assert await _state(store) is NegotiationState.REQUESTED
    assert await _outbox_rows(store.db.engine) == 0


async def test_a_write_waiting_for_a_writer_fails_when_that_writer_commits(
    store: SqlStores,
) -> None:
    await _stored(store)
    read = asyncio.Event()
    go = asyncio.Event()

    async def optimistic() -> None:
        async with store.db.transaction(optimistic=True) as conn:
            n = await _for_change(store, conn)
            read.set()
            await go.wait()
            await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))

    async with store.db.engine.connect() as other:
        attempt = asyncio.create_task(optimistic())
        await read.wait()
        locker = await other.begin()
        await other.execute(sa.select(negotiations.c.id).with_for_update())
        go.set()
        await asyncio.sleep(0.3)
        assert not attempt.done()  # waits for the row
        await other.execute(
            negotiations.update().values(state="TERMINATED", updated_at=negotiations.c.updated_at)
        )
        await locker.commit()
        with pytest.raises(ChangedSinceRead):
            await attempt
    assert await _state(store) is NegotiationState.TERMINATED


async def test_a_plain_transaction_locks_the_row_it_reads_for_change(store: SqlStores) -> None:
    """Outside ``attempt`` a row read ``for_change`` is locked: another writer waits."""
    await _stored(store)
    async with store.db.transaction() as conn:
        n = await _for_change(store, conn)
        bump = asyncio.create_task(_bump(store.db.engine))
        await asyncio.sleep(0.3)
        assert not bump.done()
        await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
    await asyncio.wait_for(bump, timeout=10)
    assert await _state(store) is NegotiationState.VERIFIED


async def test_attempt_runs_the_work_again_on_the_new_state_then_gives_up(
    store: SqlStores,
) -> None:
    await _stored(store)
    runs: list[NegotiationState] = []

    async def work(conn: AsyncConnection, *, changes: int) -> NegotiationState:
        n = await _for_change(store, conn)
        runs.append(n.state)
        if len(runs) <= changes:
            await _bump(store.db.engine)
        await _enqueue(store, conn)
        await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
        return NegotiationState.VERIFIED

    done = await store.db.attempt(lambda c: work(c, changes=1), conflict="kept changing")
    assert done is NegotiationState.VERIFIED and len(runs) == 2
    assert await _outbox_rows(store.db.engine) == 1  # the first run wrote nothing
    runs.clear()
    with pytest.raises(ConflictError, match="kept changing"):
        await store.db.attempt(lambda c: work(c, changes=100), conflict="kept changing")
    assert len(runs) == ATTEMPTS
    assert await _outbox_rows(store.db.engine) == 1


async def test_the_first_write_of_the_row_checks_its_version(store: SqlStores) -> None:
    """Setting the approval is a write of the row like ``update``: the first of them checks
    the version read, and a second, on the row the transaction has written, does not fail."""
    await _stored(store)
    async with store.db.transaction(optimistic=True) as conn:
        n = await _for_change(store, conn)
        await store.negotiations.set_approval(conn, ID, "pending")
        await store.negotiations.update(conn, replace(n, state=NegotiationState.VERIFIED))
    assert await _state(store) is NegotiationState.VERIFIED
    with pytest.raises(ChangedSinceRead):
        async with store.db.transaction(optimistic=True) as conn:
            await _for_change(store, conn)
            await _bump(store.db.engine)
            await store.negotiations.set_approval(conn, ID, "approved")
    async with store.db.reading() as conn:
        assert await store.negotiations.approval(conn, ID) == "pending"
