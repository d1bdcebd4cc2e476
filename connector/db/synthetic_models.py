"""The ``SyntheticModelStore`` port on the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.tables import synthetic_models as table
from connector.ports import SyntheticModelRecord


class SqlSyntheticModelStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(self, record: SyntheticModelRecord) -> None:
        values = {
            "dataset_id": record.dataset_id,
            "key": record.key,
            "version": record.version,
            "backend": record.backend,
            "directory": record.directory,
            "fitted_at": record.fitted_at,
            "accepted": record.accepted,
            "reason": record.reason,
            "summary": json.dumps(dict(record.summary), sort_keys=True),
        }
        where = (table.c.dataset_id == record.dataset_id) & (table.c.key == record.key)
        async with self._engine.begin() as conn:
            await conn.execute(table.delete().where(where))
            await conn.execute(table.insert().values(**values))

    async def get(self, dataset_id: str, key: str) -> SyntheticModelRecord | None:
        query = table.select().where((table.c.dataset_id == dataset_id) & (table.c.key == key))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _record(row) if row else None

    async def for_dataset(self, dataset_id: str) -> list[SyntheticModelRecord]:
        query = (
            table.select()
            .where(table.c.dataset_id == dataset_id)
            .order_by(table.c.fitted_at.desc(), table.c.key)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def delete(self, dataset_id: str, key: str) -> None:
        where = (table.c.dataset_id == dataset_id) & (table.c.key == key)
        async with self._engine.begin() as conn:
            await conn.execute(table.delete().where(where))


def _record(row: sa.RowMapping | Any) -> SyntheticModelRecord:
    fitted = row["fitted_at"]
    if fitted.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
        from datetime import UTC

        fitted = fitted.replace(tzinfo=UTC)
    return SyntheticModelRecord(
        dataset_id=row["dataset_id"],
        version=row["version"],
        key=row["key"],
        backend=row["backend"],
        directory=row["directory"],
        fitted_at=fitted,
        accepted=bool(row["accepted"]),
        reason=row["reason"],
        summary=json.loads(row["summary"]),
    )
