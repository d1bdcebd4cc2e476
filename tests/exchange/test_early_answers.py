"""A peer that cannot take our message yet: 409 is retried like a transient failure, 404 only
on the first attempts (the peer may not have recorded its process when our next message,
sent right after our answer to its request, arrives), then the message fails. Real HTTP on
loopback, a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.audit import AuditLog
from connector.clock import FixedClock
from connector.db.engine import create_engine, migrate
from connector.db.tables import outbox
from connector.exchange.sender import OutboxSender, SendPolicy
from connector.identity.tokens import TokenIssuer
from tests.conftest import free_port
from tests.identity.conftest import new_keys
from tests.store.stores import sql_stores

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Peer:
    """Answers each POST with the next of ``statuses`` (then 200), as a DSP error body."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.seen = 0
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        self.seen += 1
        status = self.statuses.pop(0) if self.statuses else 200
        body = {"@type": "ContractNegotiationError", "code": str(status), "reason": ["not yet"]}
        return web.json_response(body, status=status)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", p.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    p.url = f"http://127.0.0.1:{port}/dsp/2025-1/negotiations/c1/agreement"
    try:
        yield p
    finally:
        await runner.cleanup()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await migrate(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


async def _deliver_until_done(engine: AsyncEngine, peer: Peer) -> Any:
    """Queue one message, then send it (advancing the clock past each retry) until it is
    sent or failed; the outbox row as it ends."""
    clock = FixedClock(T0)
    store = sql_stores(engine)
    sender = OutboxSender(
        stores=store,
        tokens=TokenIssuer("did:web:127.0.0.1%3A1", new_keys(), 60, [], clock),
        timeout_seconds=5,
        clock=clock,
        audit=AuditLog(engine, clock),
        poll_seconds=1,
        policy=SendPolicy(),
    )
    async with store.db.transaction() as conn:
        await store.outbox.enqueue(
            conn,
            process_kind="negotiation",
            process_id="n1",
            message_type="ContractAgreementMessage",
            url=peer.url,
            audience="did:web:127.0.0.1%3A2",
            body={"@type": "ContractAgreementMessage"},
            now=clock.now(),
        )
    try:
        for _ in range(20):
            await sender.run_once()
            async with engine.connect() as conn:
                row = (await conn.execute(sa.select(outbox))).one()
            if row.sent_at is not None or row.failed_at is not None:
                return row
            clock.advance(120)  # past any back-off
    finally:
        await sender.aclose()
    raise AssertionError("the message was neither sent nor failed")


async def test_conflict_is_retried_until_the_peer_takes_the_message(
    engine: AsyncEngine, peer: Peer
) -> None:
    peer.statuses = [409, 409, 409]
    row = await _deliver_until_done(engine, peer)
    assert row.sent_at is not None and row.failed_at is None
    assert (row.attempts, peer.seen) == (4, 4)


async def test_unknown_process_at_first_is_retried(engine: AsyncEngine, peer: Peer) -> None:
    peer.statuses = [404, 404]
    row = await _deliver_until_done(engine, peer)
    assert row.sent_at is not None and row.failed_at is None
    assert peer.seen == 3


async def test_unknown_process_for_good_fails_after_the_early_attempts(
    engine: AsyncEngine, peer: Peer
) -> None:
    peer.statuses = [404] * 10
    row = await _deliver_until_done(engine, peer)
    assert row.failed_at is not None and row.sent_at is None
    assert peer.seen == SendPolicy().early_attempts
    assert "HTTP 404" in row.last_error and "not yet" in row.last_error


async def test_a_refusal_fails_at_once(engine: AsyncEngine, peer: Peer) -> None:
    peer.statuses = [400]
    row = await _deliver_until_done(engine, peer)
    assert row.failed_at is not None and peer.seen == 1
    assert "refused by the counterparty: HTTP 400" in row.last_error
