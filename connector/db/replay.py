"""The ``ReplayGuard`` port on the store: a jti is accepted once until it expires."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.db.tables import used_jtis
from connector.ports import Clock

# Expired jtis are purged at most this often (and whenever a jti collides), not on every
# token: the purge was one more statement on every DSP request.
PURGE_EVERY = timedelta(seconds=30)


class SqlReplayGuard:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._next_purge: datetime | None = None

    async def remember(self, jti: str, expires_at: datetime) -> bool:
        now = self._clock.now()
        purge = self._next_purge is None or now >= self._next_purge
        if purge:
            self._next_purge = now + PURGE_EVERY
        if await self._insert(jti, expires_at, purge=purge):
            return True
        # Taken: unless we just purged, the holder may have expired since the last purge.
        return not purge and await self._insert(jti, expires_at, purge=True)

    async def _insert(self, jti: str, expires_at: datetime, *, purge: bool) -> bool:
        try:
            async with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Every DSP request writes its jti; it need not wait for the WAL flush. A
                    # database crash could forget the last few hundred milliseconds of jtis,
                    # whose tokens then expire within minutes anyway: an accepted trade-off,
                    # for this table only (everything else commits synchronously).
                    await conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                if purge:
                    await self._purge(conn)
                await conn.execute(used_jtis.insert().values(jti=jti, expires_at=expires_at))
        except sa.exc.IntegrityError:
            return False
        return True

    async def _purge(self, conn: AsyncConnection) -> None:
        await conn.execute(used_jtis.delete().where(used_jtis.c.expires_at < self._clock.now()))
