"""The ``AnswerStore`` of aggregate queries on the store (SQLite or PostgreSQL): answers are
JSON objects, kept as text (``connector/fulfilment/aggregate/store.py`` has the contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.engine import single_statement
from connector.db.tables import aggregate_answers as answers
from connector.ports import Clock


class SqlAnswerStore:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        self._insert = insert(answers).on_conflict_do_nothing(
            index_elements=["dataset_id", "data_version", "query_digest"]
        )

    def _key(self, dataset_id: str, version: str, digest: str) -> sa.ColumnElement[bool]:
        return sa.and_(
            answers.c.dataset_id == dataset_id,
            answers.c.data_version == version,
            answers.c.query_digest == digest,
        )

    async def get(self, dataset_id: str, version: str, digest: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            text = await conn.scalar(
                sa.select(answers.c.answer).where(self._key(dataset_id, version, digest))
            )
        if text is None:
            return None
        answer: dict[str, Any] = orjson.loads(text)
        return answer

    async def keep(
        self, dataset_id: str, version: str, digest: str, answer: dict[str, Any]
    ) -> dict[str, Any]:
        row = {
            "dataset_id": dataset_id,
            "data_version": version,
            "query_digest": digest,
            "answer": orjson.dumps(answer).decode(),
            "created_at": self._now(),
        }
        async with single_statement(self._engine) as conn:
            await conn.execute(self._insert, row)
        kept = await self.get(dataset_id, version, digest)
        assert kept is not None  # inserted now or before, never deleted for this version
        return kept

    async def forget_other_versions(self, dataset_id: str, version: str) -> int:
        async with single_statement(self._engine) as conn:
            result = await conn.execute(
                answers.delete().where(
                    answers.c.dataset_id == dataset_id, answers.c.data_version != version
                )
            )
        return int(result.rowcount)

    def _now(self) -> datetime:
        return self._clock.now()
