"""The data plane calls let through, per data user: what rate limits count."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.clock import as_utc
from connector.db.engine import single_statement
from connector.db.tables import dataplane_calls


class DataPlaneCalls:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(
        self,
        conn: AsyncConnection,
        *,
        consumer: str,
        agreement_id: str,
        transfer_id: str,
        output_type: str,
        epsilon: float,
        at: datetime,
    ) -> None:
        await conn.execute(
            dataplane_calls.insert().values(
                consumer=consumer,
                agreement_id=agreement_id,
                transfer_id=transfer_id,
                output_type=output_type,
                epsilon=epsilon,
                called_at=at,
            )
        )

    async def forget_last(self, conn: AsyncConnection, consumer: str, transfer_id: str) -> None:
        """Take back the newest call of a transfer (its fulfilment failed)."""
        newest = (
            sa.select(sa.func.max(dataplane_calls.c.id))
            .where(
                dataplane_calls.c.consumer == consumer,
                dataplane_calls.c.transfer_id == transfer_id,
            )
            .scalar_subquery()
        )
        await conn.execute(dataplane_calls.delete().where(dataplane_calls.c.id == newest))

    async def since(
        self,
        consumer: str,
        start: datetime,
        *,
        conn: AsyncConnection | None = None,
        newest: int | None = None,
    ) -> list[datetime]:
        """When the consumer's calls since ``start`` were made (only the ``newest`` so many,
        when given), oldest first."""
        query = (
            sa.select(dataplane_calls.c.called_at)
            .where(dataplane_calls.c.consumer == consumer, dataplane_calls.c.called_at >= start)
            .order_by(dataplane_calls.c.called_at.desc())
            .limit(newest)
        )
        if conn is not None:
            rows = (await conn.execute(query)).all()
        else:
            async with single_statement(self.engine) as own:
                rows = (await own.execute(query)).all()
        return [as_utc(r[0]) for r in reversed(rows)]

    async def counts(self) -> dict[str, int]:
        """Calls by output type (for metrics)."""
        query = sa.select(dataplane_calls.c.output_type, sa.func.count()).group_by(
            dataplane_calls.c.output_type
        )
        async with single_statement(self.engine) as conn:
            return {str(k): int(n) for k, n in (await conn.execute(query)).all()}
