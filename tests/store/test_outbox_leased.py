"""Messages leased to their replica at the insert (PostgreSQL, while a sender is attached):
sent at once after the commit with no claim, unless an older message of their process is
still unsent; a lease nobody honours (a crash) expires and the claim takes over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import SystemClock
from connector.db.tables import outbox
from connector.dsp.urls import PID_PLACEHOLDER
from connector.exchange.ports import OutboxItem
from connector.exchange.sender import OutboxSender, SendPolicy
from connector.identity.tokens import TokenIssuer
from tests.conftest import free_port
from tests.identity.conftest import new_keys
from tests.store.stores import SqlStores, sql_stores

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Attached:
    """What a sender attached to the store is told after each commit."""

    def __init__(self, store: SqlStores) -> None:
        self.leased: list[OutboxItem] = []
        self.woken: list[str] = []
        store.outbox.on_leased = self.leased.extend
        store.outbox.on_enqueued = self.woken.extend
        store.outbox.lease = timedelta(seconds=30)


async def _queue(
    store: SqlStores, process: str, types: list[str], *, url: str = "http://x/m", fail: bool = False
) -> None:
    async with store.db.transaction() as conn:
        for message_type in types:
            await store.outbox.enqueue(
                conn,
                process_kind="negotiation",
                process_id=process,
                message_type=message_type,
                url=url,
                audience="did:web:x",
                body={"type": message_type, "n": [1, "ü"]},
                now=T0,
            )
        if fail:
            raise RuntimeError("the handler failed after queueing")


async def _rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = sa.select(outbox).order_by(outbox.c.id)
        return list((await conn.execute(query)).all())


async def test_a_message_is_leased_at_the_insert_and_handed_over_after_the_commit(
    pg_engine: AsyncEngine,
) -> None:
    store = sql_stores(pg_engine)
    sender = Attached(store)
    await _queue(store, "p1", ["M0"])
    [row] = await _rows(pg_engine)
    assert (row.attempts, row.next_attempt_at, row.created_at) == (
        1,
        T0 + timedelta(seconds=30),
        T0,
    )
    assert sender.leased == [
        OutboxItem(
            id=row.id,
            process_kind="negotiation",
            process_id="p1",
            message_type="M0",
            url="http://x/m",
            audience="did:web:x",
            body={"type": "M0", "n": [1, "ü"]},
            attempts=1,
        )
    ]
    assert sender.woken == []  # nothing for the claim loop
    # Leased: no claim takes it while the lease runs ...
    assert (
        await store.outbox.claim(now=T0 + timedelta(seconds=29), lease_seconds=30, limit=10) == []
    )
    # ... and if its replica died before sending, the claim takes it when the lease ends.
    [again] = await store.outbox.claim(now=T0 + timedelta(seconds=31), lease_seconds=30, limit=10)
    assert (again.id, again.attempts, again.body) == (row.id, 2, {"type": "M0", "n": [1, "ü"]})


async def test_an_older_unsent_message_goes_first_through_the_claim(
    pg_engine: AsyncEngine,
) -> None:
    store = sql_stores(pg_engine)
    sender = Attached(store)
    await _queue(store, "p1", ["M0"])
    await _queue(store, "p1", ["M1", "M2"])  # M0 is leased, not sent: these wait for it
    await _queue(store, "p2", ["N0"])
    rows = await _rows(pg_engine)
    assert [(r.process_id, r.message_type, r.attempts) for r in rows] == [
        ("p1", "M0", 1),
        ("p1", "M1", 0),
        ("p1", "M2", 0),
        ("p2", "N0", 1),
    ]
    assert [i.message_type for i in sender.leased] == ["M0", "N0"]
    assert sender.woken == ["p1", "p1"]
    # The claim keeps the order: M1 only once M0 is sent.
    assert await store.outbox.claim(now=T0, lease_seconds=30, limit=10) == []
    await store.outbox.mark_sent(None, sender.leased[0].id, T0)
    [m1] = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    assert (m1.message_type, m1.attempts) == ("M1", 1)


async def test_a_failed_transaction_hands_nothing_over(pg_engine: AsyncEngine) -> None:
    store = sql_stores(pg_engine)
    sender = Attached(store)
    with pytest.raises(RuntimeError):
        await _queue(store, "p1", ["M0"], fail=True)
    assert await _rows(pg_engine) == []
    assert (sender.leased, sender.woken) == ([], [])


async def test_not_leased_without_a_sender_or_without_the_counterpartys_pid(
    pg_engine: AsyncEngine,
) -> None:
    store = sql_stores(pg_engine)
    await _queue(store, "p1", ["M0"])  # no sender attached: the claim loop sends it
    sender = Attached(store)
    # The URL waits for the counterparty's pid, which the claim reads.
    await _queue(store, "p2", ["N0"], url=f"http://x/negotiations/{PID_PLACEHOLDER}/events")
    rows = await _rows(pg_engine)
    assert [(r.process_id, r.attempts, r.next_attempt_at) for r in rows] == [
        ("p1", 0, T0),
        ("p2", 0, T0),
    ]
    assert (sender.leased, sender.woken) == ([], ["p2"])
    claimed = await store.outbox.claim(now=T0, lease_seconds=30, limit=10)
    assert sorted(i.process_id for i in claimed) == ["p1", "p2"]


async def test_with_other_writes_in_one_statement_and_after_a_read(
    pg_engine: AsyncEngine,
) -> None:
    """The leased insert is combined with the transaction's other held writes (it goes
    last, its rows are the statement's), and works mid-transaction too."""
    store = sql_stores(pg_engine)
    sender = Attached(store)
    async with store.db.transaction() as conn:
        for process in ("p1", "p2"):  # a second leased insert flushes the first
            await store.outbox.enqueue(
                conn,
                process_kind="negotiation",
                process_id=process,
                message_type="M0",
                url="http://x/m",
                audience="did:web:x",
                body={},
                now=T0,
            )
        await store.negotiations.get(conn, "nothing")  # a read flushes the held writes
        await store.outbox.enqueue(
            conn,
            process_kind="transfer",
            process_id="t1",
            message_type="S0",
            url="http://x/t",
            audience="did:web:x",
            body={"a": 1},
            now=T0,
        )
    rows = await _rows(pg_engine)
    assert [(r.process_id, r.attempts) for r in rows] == [("p1", 1), ("p2", 1), ("t1", 1)]
    assert [(i.id, i.process_id) for i in sender.leased] == [(r.id, r.process_id) for r in rows]


Handler = Callable[[web.Request], Awaitable[web.Response]]


@contextlib.asynccontextmanager
async def peer(answer: Handler) -> AsyncIterator[str]:
    """A loopback HTTP server answering every POST with ``answer``; yields its base URL."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_sender(store: SqlStores, **policy: Any) -> AsyncIterator[OutboxSender]:
    """The outbox sender's loop running (attached to ``store``), stopped on the way out."""
    clock = SystemClock()
    sender = OutboxSender(
        stores=store,
        tokens=TokenIssuer("did:web:127.0.0.1%3A1", new_keys(), 60, [], clock),
        timeout_seconds=5,
        clock=clock,
        audit=None,  # type: ignore[arg-type]  # only a failure is audited
        poll_seconds=60,
        policy=SendPolicy(**policy),
    )
    store.outbox.on_enqueued = sender.wake  # as the composition root wires it
    task = asyncio.create_task(sender.run())
    try:
        while store.outbox.on_leased is None:  # attached when its loop starts
            await asyncio.sleep(0.01)
        yield sender
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sender.aclose()


async def _queue_event(store: SqlStores, process: str, url: str) -> None:
    async with store.db.transaction() as conn:
        await store.outbox.enqueue(
            conn,
            process_kind="negotiation",
            process_id=process,
            message_type="ContractNegotiationEventMessage",
            url=url,
            audience="did:web:peer",
            body={"@type": "ContractNegotiationEventMessage"},
            now=SystemClock().now(),
        )


async def test_an_attached_sender_sends_a_committed_message_with_no_claim(
    pg_engine: AsyncEngine,
) -> None:
    """Real HTTP on loopback: the running sender gets the message from the commit, posts it
    and marks it sent; its claim loop, not woken, claims nothing meanwhile."""
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        received.append({"path": request.path, "body": await request.json()})
        got.set()
        return web.json_response({}, status=200)

    store = sql_stores(pg_engine)
    claims = 0
    claim = store.outbox.claim

    async def counted(**kwargs: Any) -> list[OutboxItem]:
        nonlocal claims
        claims += 1
        return await claim(**kwargs)

    store.outbox.claim = counted  # type: ignore[method-assign]
    async with peer(answer) as base, running_sender(store):
        await _queue_event(store, "p1", f"{base}/negotiations/c1/events")
        await asyncio.wait_for(got.wait(), 10)
        for _ in range(500):  # the sent mark follows the answer
            [row] = await _rows(pg_engine)
            if row.sent_at is not None:
                break
            await asyncio.sleep(0.01)
        assert row.sent_at is not None and row.attempts == 1
        assert received == [
            {
                "path": "/negotiations/c1/events",
                "body": {"@type": "ContractNegotiationEventMessage"},
            }
        ]
        assert claims == 1  # the loop's first, before anything was queued
    assert store.outbox.on_leased is None  # detached: a commit now leaves messages to the claim


async def test_messages_sent_at_their_commit_do_not_starve_the_claim(
    pg_engine: AsyncEngine,
) -> None:
    """The sender's bound (``batch``) is for claimed messages: one leased at its commit and
    stuck at a slow peer does not keep a claimable message of another process waiting."""
    release = asyncio.Event()
    arrived: list[str] = []
    fast = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        arrived.append(request.path)
        if request.path == "/slow":
            await release.wait()
        else:
            fast.set()
        return web.json_response({}, status=200)

    store = sql_stores(pg_engine)
    async with peer(answer) as base:
        try:
            async with running_sender(store, batch=1):
                await _queue_event(store, "p1", f"{base}/slow")  # leased, then stuck
                while arrived != ["/slow"]:
                    await asyncio.sleep(0.01)
                attached, store.outbox.on_leased = store.outbox.on_leased, None
                # Left to the claim (as when an older message of its process waits).
                await _queue_event(store, "p2", f"{base}/fast")
                store.outbox.on_leased = attached
                await asyncio.wait_for(fast.wait(), 5)  # not after /slow: still stuck
                assert arrived == ["/slow", "/fast"] and not release.is_set()
        finally:
            release.set()  # before the peer stops: it waits for its handlers
