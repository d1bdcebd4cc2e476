"""DSP store contract (SQLite and PostgreSQL): processes round-trip, agreements, the outbox,
and plain reads that never wait for a writer."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.tables import outbox
from connector.dsp.agreement import AgreementRecord
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role, TransferState
from connector.dsp.transfer import Transfer
from connector.dsp.transfer_messages import DataAddress
from tests.store.stores import SqlStores, sql_stores

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _negotiation(id: str = "urn:uuid:n1") -> Negotiation:
    n = Negotiation.new(
        id=id,
        role=Role.PROVIDER,
        counterparty_did="did:web:c",
        now=T0,
        counterparty_address="http://c/dsp",
        provider_pid=id,
        consumer_pid="c1",
    )
    return replace(
        n,
        state=NegotiationState.AGREED,
        offer={"@id": "o", "target": "ds"},
        agreement={"@id": "a1", "target": "ds"},
        provider_signature="jws",
        termination_reason=("x", "y"),
    )


def _transfer() -> Transfer:
    """A consumer transfer not yet acknowledged by its provider."""
    return Transfer.new(
        id="urn:uuid:t1",
        role=Role.CONSUMER,
        counterparty_did="did:web:p",
        now=T0,
        counterparty_address="http://p/dsp",
        consumer_pid="urn:uuid:t1",
        agreement_id="a1",
        format="FHIR-Aggregate-PULL",
    )


async def test_negotiation_round_trip_and_lookup(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    n = _negotiation()
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, n)
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, n.id, for_change=True) == n
        assert (
            await store.negotiations.find(conn, Role.PROVIDER, "did:web:c", consumer_pid="c1") == n
        )
        assert (
            await store.negotiations.find(conn, Role.PROVIDER, "did:web:other", consumer_pid="c1")
            is None
        )
        changed = replace(
            n,
            state=NegotiationState.VERIFIED,
            consumer_signature="jws2",
            updated_at=T0 + timedelta(seconds=5),
        )
        await store.negotiations.update(conn, changed)
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, n.id) == changed
        assert [x.id for x in await store.negotiations.list(conn, role=Role.PROVIDER)] == [n.id]


async def test_failed_transaction_leaves_nothing(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    try:
        async with store.db.transaction() as conn:
            await store.negotiations.insert(conn, _negotiation())
            raise RuntimeError("crash between two steps")
    except RuntimeError:
        pass
    async with store.db.transaction() as conn:
        assert await store.negotiations.get(conn, "urn:uuid:n1") is None


async def test_transfer_round_trip(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    t = _transfer()
    t = replace(
        t,
        state=TransferState.STARTED,
        provider_pid="p1",
        data_address=DataAddress(
            endpointType="https://w3id.org/idsa/v4.1/HTTP",
            endpoint="http://p/data",
            endpointProperties=[{"name": "authorization", "value": "tok"}],
        ),
    )
    async with store.db.transaction() as conn:
        await store.transfers.insert(conn, t)
    async with store.db.transaction() as conn:
        assert await store.transfers.get(conn, t.id) == t


async def test_agreement_usage_is_counted(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    record = AgreementRecord(
        id="a1",
        negotiation_id="n1",
        role=Role.PROVIDER,
        dataset_id="ds",
        provider_did="did:web:p",
        consumer_did="did:web:c",
        agreement={"@id": "a1"},
        provider_signature="s1",
        consumer_signature="s2",
        uses=0,
        epsilon_spent=0.0,
        created_at=T0,
    )
    async with store.db.transaction() as conn:
        await store.agreements.insert(conn, record)
        await store.agreements.spend(conn, "a1", epsilon=0.25)
        await store.agreements.spend(conn, "a1", epsilon=0.25)
    async with store.db.transaction() as conn:
        got = await store.agreements.get(conn, "a1")
    assert got is not None and got.uses == 2 and got.epsilon_spent == 0.5


async def _enqueue(store: SqlStores, process: str, n: int) -> None:
    async with store.db.transaction() as conn:
        for i in range(n):
            await store.outbox.enqueue(
                conn,
                process_kind="negotiation",
                process_id=process,
                message_type=f"M{i}",
                url="http://x",
                audience="did:web:x",
                body={"i": i},
                now=T0,
            )


async def test_outbox_claims_one_message_per_process_in_order(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    await _enqueue(store, "p1", 3)
    await _enqueue(store, "p2", 1)
    first = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    assert sorted((i.process_id, i.message_type) for i in first) == [("p1", "M0"), ("p2", "M0")]
    # Claimed messages are leased: not claimed again until the lease ends or they are done.
    assert await store.outbox.claim(now=T0, lease_seconds=30, limit=10) == []
    async with store.db.transaction() as conn:
        for item in first:
            await store.outbox.mark_sent(conn, item.id, T0)
    second = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    assert [(i.process_id, i.message_type) for i in second] == [("p1", "M1")]
    # A crashed sender's lease expires and the message is claimed again, attempt counted.
    again = await store.outbox.claim(now=T0 + timedelta(seconds=31), lease_seconds=30, limit=10)
    assert [(i.message_type, i.attempts) for i in again] == [("M1", 2)]


async def test_a_claim_carries_the_counterpartys_pid_of_the_process(engine: AsyncEngine) -> None:
    """For a URL with ``{pid}``: the pid the ACK recorded (the consumer's for our provider
    negotiation, the provider's for our consumer transfer), None before the ACK."""
    store = sql_stores(engine)
    consumer_side = _transfer()
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, _negotiation("urn:uuid:n1"))  # provider, c1
        await store.transfers.insert(conn, consumer_side)  # no ACK yet
        for kind, process in (("negotiation", "urn:uuid:n1"), ("transfer", "urn:uuid:t1")):
            await store.outbox.enqueue(
                conn,
                process_kind=kind,
                process_id=process,
                message_type="M",
                url="http://x/%7Bpid%7D",
                audience="did:web:x",
                body={},
                now=T0,
            )
    claimed = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    assert {(i.process_id, i.counterparty_pid) for i in claimed} == {
        ("urn:uuid:n1", "c1"),
        ("urn:uuid:t1", None),
    }
    async with store.db.transaction() as conn:
        t = await store.transfers.get(conn, "urn:uuid:t1", for_change=True)
        assert t is not None
        await store.transfers.update(conn, replace(t, provider_pid="p-77"))
    later = await store.outbox.claim(now=T0 + timedelta(seconds=31), lease_seconds=30, limit=10)
    assert {(i.process_id, i.counterparty_pid) for i in later} == {
        ("urn:uuid:n1", "c1"),
        ("urn:uuid:t1", "p-77"),
    }


async def test_concurrent_claims_never_share_a_message(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    for p in range(20):
        await _enqueue(store, f"p{p}", 1)
    results = await asyncio.gather(
        *(store.outbox.claim(now=T0, lease_seconds=30, limit=5) for _ in range(6))
    )
    ids = [item.id for batch in results for item in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_sent_messages_lose_their_body_and_are_purged_later(engine: AsyncEngine) -> None:
    store = sql_stores(engine)
    await _enqueue(store, "p1", 2)
    [item] = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    async with store.db.transaction() as conn:
        await store.outbox.mark_sent(conn, item.id, T0)
    assert await store.outbox.purge(before=T0) == 0  # not older than the cut-off yet
    assert await store.outbox.purge(before=T0 + timedelta(days=8)) == 1
    # The unsent message is untouched and still claimable, body intact.
    [left] = await store.outbox.claim(now=T0 + timedelta(days=8), lease_seconds=30, limit=10)
    assert left.body == {"i": 1}


async def test_acks_are_recorded_with_their_sent_marks_refusing_only_the_wrong_ones(
    engine: AsyncEngine,
) -> None:
    """The sender's initial messages answered with ACKs, concurrently with plain sent marks
    (one statement on PostgreSQL): each ACK sets both pids of its negotiation; one naming
    another consumerPid, or a providerPid another negotiation with that provider has, is
    refused (False) and changes nothing; every message is marked sent either way."""
    store = sql_stores(engine)
    async with store.db.transaction() as conn:
        for i in range(8):
            n = Negotiation.new(
                id=f"urn:uuid:c{i}",
                role=Role.CONSUMER,
                counterparty_did="did:web:p",
                now=T0,
                counterparty_address="http://p/dsp",
                consumer_pid=f"urn:uuid:c{i}",
            )
            await store.negotiations.insert(conn, n)
    for i in range(8):
        await _enqueue(store, f"urn:uuid:c{i}", 1)
    for p in range(4):
        await _enqueue(store, f"plain{p}", 1)
    claimed = {
        i.process_id: i for i in await store.outbox.claim(now=T0, lease_seconds=30, limit=100)
    }
    assert len(claimed) == 12
    acks = {f"urn:uuid:c{i}": (f"p-{i}", f"urn:uuid:c{i}") for i in range(6)}
    acks["urn:uuid:c6"] = ("p-6", "urn:uuid:someone-else")  # not our consumerPid
    acks["urn:uuid:c7"] = ("p-1", "urn:uuid:c7")  # c1's providerPid

    async def ack(process: str) -> bool:
        ppid, cpid = acks[process]
        item = claimed[process]
        return await store.outbox.mark_sent_with_ack(
            item.id, T0, negotiation_id=process, provider_pid=ppid, consumer_pid=cpid
        )

    results = await asyncio.gather(
        *(ack(p) for p in acks),
        *(store.outbox.mark_sent(None, claimed[f"plain{p}"].id, T0) for p in range(4)),
    )
    # c1 and c7 race for p-1: whichever comes first gets it, the other is refused.
    outcome = dict(zip(acks, results[:8], strict=True))
    assert outcome["urn:uuid:c6"] is False
    assert outcome["urn:uuid:c1"] != outcome["urn:uuid:c7"]
    assert all(outcome[f"urn:uuid:c{i}"] for i in (0, 2, 3, 4, 5))
    async with store.db.transaction() as conn:
        for i in range(8):
            n = await store.negotiations.get(conn, f"urn:uuid:c{i}")
            assert n is not None
            if outcome[n.id]:
                assert (n.provider_pid, n.consumer_pid) == acks[n.id]
            else:
                assert (n.provider_pid, n.consumer_pid) == (None, n.id)
    # Everything was marked sent: nothing is claimable again, even after the lease.
    assert (
        await store.outbox.claim(now=T0 + timedelta(minutes=1), lease_seconds=30, limit=100) == []
    )


async def test_concurrent_sent_marks_of_their_own_all_land(engine: AsyncEngine) -> None:
    """Sent marks outside a transaction (the sender's) may share one statement under load;
    each is stored with its own time, drops its body, and frees its process's next message."""
    store = sql_stores(engine)
    for p in range(30):
        await _enqueue(store, f"p{p}", 2)
    claimed = await store.outbox.claim(now=T0, lease_seconds=30, limit=100)
    assert len(claimed) == 30
    await asyncio.gather(
        *(
            store.outbox.mark_sent(None, item.id, T0 + timedelta(seconds=i))
            for i, item in enumerate(claimed)
        )
    )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(outbox.c.id, outbox.c.sent_at, outbox.c.body).where(
                    outbox.c.sent_at.is_not(None)
                )
            )
        ).all()
    sent = {r.id: r for r in rows}
    assert set(sent) == {item.id for item in claimed}
    for i, item in enumerate(claimed):
        assert sent[item.id].sent_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=i)
        assert sent[item.id].body == "{}"
    second = await store.outbox.claim(now=T0, lease_seconds=30, limit=100)
    assert sorted(i.process_id for i in second) == sorted(f"p{p}" for p in range(30))
    assert {i.message_type for i in second} == {"M1"}


async def test_a_plain_read_waits_for_no_writer(engine: AsyncEngine) -> None:
    """``reading()`` takes no lock: while a writer holds its transaction open (on SQLite the
    database's write lock, on PostgreSQL the row's), reads see what is committed at once."""
    store = sql_stores(engine)
    n = _negotiation()
    async with store.db.transaction() as conn:
        await store.negotiations.insert(conn, n)

    async def read() -> tuple[Negotiation | None, list[Negotiation]]:
        async with store.db.reading() as conn:
            return (
                await store.negotiations.get(conn, n.id),
                await store.negotiations.list(conn, role=Role.PROVIDER),
            )

    async with store.db.transaction() as writer:
        held = await store.negotiations.get(writer, n.id, for_change=True)
        assert held is not None
        await store.negotiations.update(writer, replace(held, state=NegotiationState.VERIFIED))
        got, listed = await asyncio.wait_for(read(), timeout=5)
        assert got == n and listed == [n]  # the committed state, not the writer's
    async with store.db.reading() as conn:
        after = await store.negotiations.get(conn, n.id)
    assert after is not None and after.state is NegotiationState.VERIFIED
