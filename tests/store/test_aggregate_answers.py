"""AnswerStore contract (aggregate queries' kept answers) on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import FixedClock
from connector.db.aggregate import SqlAnswerStore
from connector.fulfilment.aggregate.store import AnswerStore, MemoryAnswerStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _release(first: float | None) -> dict[str, Any]:
    return {"values": [first, None, 20.0, 3.25], "reference": "2026-11-01", "computedAt": "x"}


@pytest.fixture(params=["sql", "memory"])
def store(request: pytest.FixtureRequest, engine: AsyncEngine) -> AnswerStore:
    if request.param == "memory":
        return MemoryAnswerStore()
    return SqlAnswerStore(engine, FixedClock(T0))


async def test_an_answer_is_kept_by_dataset_version_and_digest(store: AnswerStore) -> None:
    assert await store.get("ds", "v1", "d1") is None
    kept = await store.keep("ds", "v1", "d1", _release(120.0))
    assert kept == _release(120.0)
    assert await store.get("ds", "v1", "d1") == _release(120.0)
    assert await store.get("ds", "v2", "d1") is None
    assert await store.get("other", "v1", "d1") is None
    assert await store.get("ds", "v1", "d2") is None


async def test_the_first_answer_wins(store: AnswerStore) -> None:
    await store.keep("ds", "v1", "d1", _release(120.0))
    assert await store.keep("ds", "v1", "d1", _release(130.0)) == _release(120.0)
    assert await store.get("ds", "v1", "d1") == _release(120.0)


async def test_concurrent_first_answers_agree(store: AnswerStore) -> None:
    kept = await asyncio.gather(
        *(store.keep("ds", "v1", "race", _release(float(10 * i))) for i in range(16))
    )
    assert all(k == kept[0] for k in kept)
    assert await store.get("ds", "v1", "race") == kept[0]


async def test_other_versions_are_forgotten(store: AnswerStore) -> None:
    for version in ("v1", "v2", "v3"):
        await store.keep("ds", version, "d1", _release(10.0))
    await store.keep("other", "v1", "d1", _release(10.0))
    assert await store.forget_other_versions("ds", "v3") == 2
    assert await store.get("ds", "v1", "d1") is None
    assert await store.get("ds", "v3", "d1") == _release(10.0)
    assert await store.get("other", "v1", "d1") == _release(10.0)
