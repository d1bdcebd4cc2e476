"""The ``ReplayGuard`` port on the store: a jti is accepted once until it expires."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db import deferred
from connector.db.batching import GroupWriter
from connector.db.engine import no_flush_wait, single_statement
from connector.db.tables import used_jtis
from connector.ports import Clock

# Expired jtis are purged at most this often (and whenever a jti collides), not on every
# token: the purge was one more statement on every DSP request.
PURGE_EVERY = timedelta(seconds=30)

# PostgreSQL: the jtis of concurrent requests in one statement (see GroupWriter); RETURNING
# names those that were new. It need not wait for the WAL flush (see _insert).
_PG_INSERT_MANY = (
    "INSERT INTO used_jtis (jti, expires_at) "
    "SELECT j, e FROM unnest($1::text[], $2::timestamptz[]) AS t(j, e) "
    "WHERE (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL "
    "ON CONFLICT (jti) DO NOTHING RETURNING jti"
)


class SqlReplayGuard:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._next_purge: datetime | None = None
        # Built once (one statement on every DSP request): INSERT ... SELECT, so the
        # no-WAL-wait condition has a WHERE to go in.
        row = sa.select(
            sa.bindparam("jti", type_=sa.String()),
            sa.bindparam("expires_at", type_=sa.DateTime(timezone=True)),
        ).where(no_flush_wait(engine.dialect.name))
        self._insert_jti = used_jtis.insert().from_select(["jti", "expires_at"], row)
        self._group: GroupWriter[tuple[str, datetime], bool] | None = (
            GroupWriter(self._insert_many) if engine.dialect.name == "postgresql" else None
        )

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
        if purge:
            async with single_statement(self._engine) as conn:
                await conn.execute(
                    used_jtis.delete().where(used_jtis.c.expires_at < self._clock.now())
                )
        if self._group is not None:
            return await self._group.submit((jti, expires_at))
        # One statement in its own transaction. Every DSP request writes its jti; it need not
        # wait for the WAL flush: a database crash could forget the last few hundred
        # milliseconds of jtis, whose tokens expire within minutes anyway (an accepted
        # trade-off, for this table only).
        try:
            async with single_statement(self._engine) as conn:
                await conn.execute(self._insert_jti, {"jti": jti, "expires_at": expires_at})
        except sa.exc.IntegrityError:
            return False
        return True

    async def _insert_many(self, items: Sequence[tuple[str, datetime]]) -> list[bool]:
        args = ([jti for jti, _ in items], [exp for _, exp in items])
        async with single_statement(self._engine) as conn:
            new = {row[0] for row in await deferred.run(conn, _PG_INSERT_MANY, args)}
        results = []
        for jti, _ in items:  # the same jti twice in one batch: only the first is new
            results.append(jti in new)
            new.discard(jti)
        return results
