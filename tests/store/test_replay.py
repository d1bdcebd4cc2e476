"""ReplayGuard contract on the store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import FixedClock
from connector.db.replay import SqlReplayGuard

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_jti_accepted_once(engine: AsyncEngine) -> None:
    guard = SqlReplayGuard(engine, FixedClock(T0))
    assert await guard.remember("j1", T0 + timedelta(minutes=5))
    assert not await guard.remember("j1", T0 + timedelta(minutes=5))
    assert await guard.remember("j2", T0 + timedelta(minutes=5))


async def test_expired_jtis_are_forgotten(engine: AsyncEngine) -> None:
    clock = FixedClock(T0)
    guard = SqlReplayGuard(engine, clock)
    assert await guard.remember("j1", T0 + timedelta(minutes=1))
    clock.advance(120)
    # Expired entries are purged; a token that old is refused by its exp check anyway.
    assert await guard.remember("j3", T0 + timedelta(minutes=5))
    assert await guard.remember("j1", T0 + timedelta(minutes=5))


async def test_concurrent_requests_accept_each_jti_exactly_once(engine: AsyncEngine) -> None:
    """Under load the jtis of concurrent requests share statements (PostgreSQL); a jti sent
    several times at once, within one batch or across batches, is still accepted once."""
    guard = SqlReplayGuard(engine, FixedClock(T0))
    expires = T0 + timedelta(minutes=5)
    jtis = [f"c{i % 50}" for i in range(200)]  # each of 50 jtis four times, interleaved
    results = await asyncio.gather(*(guard.remember(j, expires) for j in jtis))
    accepted = [j for j, ok in zip(jtis, results, strict=True) if ok]
    assert sorted(accepted) == sorted({*jtis})
    assert not await guard.remember("c7", expires)


async def test_two_guards_on_one_database_agree(engine: AsyncEngine) -> None:
    """Two replicas (two guards, one database) accept a jti once between them."""
    first, second = SqlReplayGuard(engine, FixedClock(T0)), SqlReplayGuard(engine, FixedClock(T0))
    expires = T0 + timedelta(minutes=5)
    jtis = [f"r{i}" for i in range(60)]
    results = await asyncio.gather(
        *(guard.remember(j, expires) for j in jtis for guard in (first, second))
    )
    assert sum(results) == len(jtis)
