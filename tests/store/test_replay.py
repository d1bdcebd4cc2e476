"""ReplayGuard contract on the store."""

from __future__ import annotations

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
