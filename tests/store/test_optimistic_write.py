"""PostgreSQL: an optimistic negotiation write (``update_negotiation(expect=version)``) fails
with ``ChangedSinceRead`` when the row changed after ``get_negotiation_versioned`` read it, and
then nothing of its transaction is written: not the outbox message combined with it in one
statement, nor what an earlier statement of a begun transaction wrote. A writer holding the
row when the write arrives makes it wait, and it fails once that writer commits."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.tables import negotiations, outbox
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState
from connector.dsp.store import ChangedSinceRead, DspStore
from tests.store.test_dsp_store import T0, _negotiation


@pytest.fixture
def store(pg_engine: AsyncEngine) -> DspStore:
    return DspStore(pg_engine)


async def _stored(store: DspStore) -> Negotiation:
    n = replace(_negotiation(), state=NegotiationState.REQUESTED)
    async with store.transaction() as conn:
        await store.insert_negotiation(conn, n)
    return n


async def _read(store: DspStore) -> tuple[Negotiation, int]:
    async with store.reading() as conn:
        found = await store.get_negotiation_versioned(conn, "urn:uuid:n1")
    assert found is not None
    return found


async def _bump(engine: AsyncEngine) -> None:
    """Another writer: a new version of the row, its content unchanged."""
    async with engine.begin() as conn:
        await conn.execute(
            negotiations.update().values(updated_at=negotiations.c.updated_at),
        )


async def _enqueue(store: DspStore, conn: sa.ext.asyncio.AsyncConnection) -> None:
    await store.enqueue(
        conn,
        process_kind="negotiation",
        process_id="urn:uuid:n1",
        message_type="ContractAgreementVerificationMessage",
        url="http://p/dsp/negotiations/urn:uuid:p1/agreement/verification",
        audience="did:web:p",
        body={"m": 1},
        now=T0,
    )


async def _outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar())


async def _state(store: DspStore) -> NegotiationState:
    async with store.reading() as conn:
        n = await store.get_negotiation(conn, "urn:uuid:n1")
    assert n is not None
    return n.state


async def test_an_unchanged_row_is_written_with_what_goes_with_it(store: DspStore) -> None:
    await _stored(store)
    n, version = await _read(store)
    async with store.transaction() as conn:
        await _enqueue(store, conn)
        await store.update_negotiation(
            conn, replace(n, state=NegotiationState.VERIFIED), expect=version
        )
    assert await _state(store) is NegotiationState.VERIFIED
    assert await _outbox_rows(store.engine) == 1
    _, after = await _read(store)
    assert after != version  # the write made a new version


async def test_a_changed_row_fails_the_statement_and_writes_nothing(store: DspStore) -> None:
    await _stored(store)
    n, version = await _read(store)
    await _bump(store.engine)
    with pytest.raises(ChangedSinceRead, match="negotiation urn:uuid:n1 changed since it was read"):
        async with store.transaction() as conn:
            await _enqueue(store, conn)  # combined with the update in one statement
            await store.update_negotiation(
                conn, replace(n, state=NegotiationState.VERIFIED), expect=version
            )
    assert await _state(store) is NegotiationState.REQUESTED
    assert await _outbox_rows(store.engine) == 0


async def test_a_changed_row_rolls_back_a_begun_transaction(store: DspStore) -> None:
    await _stored(store)
    n, version = await _read(store)
    await _bump(store.engine)
    with pytest.raises(ChangedSinceRead):
        async with store.transaction() as conn:
            await _enqueue(store, conn)
            # A read sends the held outbox insert on its own, in a transaction begun for it.
            assert await store.approval(conn, n.id) is None
            await store.update_negotiation(
                conn, replace(n, state=NegotiationState.VERIFIED), expect=version
            )
    assert await _state(store) is NegotiationState.REQUESTED
    assert await _outbox_rows(store.engine) == 0


async def test_a_write_waiting_for_a_writer_fails_when_that_writer_commits(
    store: DspStore,
) -> None:
    await _stored(store)
    n, version = await _read(store)
    async with store.engine.connect() as other:
        locker = await other.begin()
        await other.execute(sa.select(negotiations.c.id).with_for_update())

        async def optimistic() -> None:
            async with store.transaction() as conn:
                await store.update_negotiation(
                    conn, replace(n, state=NegotiationState.VERIFIED), expect=version
                )

        attempt = asyncio.create_task(optimistic())
        await asyncio.sleep(0.3)
        assert not attempt.done()  # waits for the row
        await other.execute(
            negotiations.update().values(state="TERMINATED", updated_at=negotiations.c.updated_at)
        )
        await locker.commit()
        with pytest.raises(ChangedSinceRead):
            await attempt
    assert await _state(store) is NegotiationState.TERMINATED


async def test_the_same_check_without_held_writes(store: DspStore) -> None:
    """On a connection that does not hold writes, the update runs through SQLAlchemy at once."""
    await _stored(store)
    n, version = await _read(store)
    await _bump(store.engine)
    changed = replace(n, state=NegotiationState.VERIFIED)
    with pytest.raises(ChangedSinceRead, match="negotiation urn:uuid:n1 changed"):
        async with store.engine.begin() as conn:
            await store.update_negotiation(conn, changed, expect=version)
    n, version = await _read(store)
    async with store.engine.begin() as conn:
        await store.update_negotiation(conn, changed, expect=version)
    assert await _state(store) is NegotiationState.VERIFIED
