"""Signed-out catalog UI sessions (``ui_signouts``), shared by replicas."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.tables import ui_signouts


class SignOuts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, nonce: str, *, expires_at: datetime, now: datetime) -> None:
        """Session ``nonce`` is over (kept until ``expires_at``; expired ones are dropped)."""
        async with self._engine.begin() as conn:
            await conn.execute(ui_signouts.delete().where(ui_signouts.c.expires_at < now))
            exists = sa.select(ui_signouts.c.nonce).where(ui_signouts.c.nonce == nonce)
            if (await conn.execute(exists)).first() is None:
                await conn.execute(ui_signouts.insert().values(nonce=nonce, expires_at=expires_at))

    async def signed_out(self, nonce: str) -> bool:
        async with self._engine.connect() as conn:
            query = sa.select(ui_signouts.c.nonce).where(ui_signouts.c.nonce == nonce)
            return (await conn.execute(query)).first() is not None
