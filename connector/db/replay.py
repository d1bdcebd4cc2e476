"""The ``ReplayGuard`` port on the store: a jti is accepted once until it expires."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.tables import used_jtis
from connector.ports import Clock


class SqlReplayGuard:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    async def remember(self, jti: str, expires_at: datetime) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    used_jtis.delete().where(used_jtis.c.expires_at < self._clock.now())
                )
                await conn.execute(used_jtis.insert().values(jti=jti, expires_at=expires_at))
        except sa.exc.IntegrityError:
            return False
        return True
