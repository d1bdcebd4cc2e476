"""The SyntheticModelStore contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.db.synthetic_models import SqlSyntheticModelStore
from connector.ports import SyntheticModelRecord

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _record(key: str, *, at: datetime = T0, accepted: bool = True) -> SyntheticModelRecord:
    return SyntheticModelRecord(
        dataset_id="ds-1",
        version=key.split("-")[0],
        key=key,
        backend="gaussian_copula",
        directory=f"/data/models/ds-1/{key}",
        fitted_at=at,
        accepted=accepted,
        reason=None if accepted else "quality score 0.5 is below the minimum 0.8",
        summary={"quality": 0.87},
    )


async def test_saved_record_reads_back_equal(engine: AsyncEngine) -> None:
    store = SqlSyntheticModelStore(engine)
    assert await store.get("ds-1", "v1-a") is None
    await store.save(_record("v1-a"))
    assert await store.get("ds-1", "v1-a") == _record("v1-a")
    assert await store.get("ds-2", "v1-a") is None


async def test_save_replaces_and_lists_newest_first(engine: AsyncEngine) -> None:
    store = SqlSyntheticModelStore(engine)
    await store.save(_record("v1-a"))
    await store.save(_record("v2-a", at=T0 + timedelta(hours=1)))
    await store.save(_record("v1-a", accepted=False))
    assert [r.key for r in await store.for_dataset("ds-1")] == ["v2-a", "v1-a"]
    rejected = await store.get("ds-1", "v1-a")
    assert rejected is not None and not rejected.accepted and rejected.reason
    await store.delete("ds-1", "v2-a")
    assert [r.key for r in await store.for_dataset("ds-1")] == ["v1-a"]
