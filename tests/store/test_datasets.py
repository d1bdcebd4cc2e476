"""The dataset store (SQLite and PostgreSQL): offers are Offers on the way out, whatever a row
written before the management API filled in ``@type`` holds; an update made from an older
version of a row is refused, not applied over a newer one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.errors import ConflictError
from connector.publishing.records import DatasetRecord
from connector.publishing.store import DatasetStore

T0 = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)
UNTYPED = {"@id": "offer-1", "permission": [{"action": "use"}]}


async def test_an_offer_stored_without_type_reads_back_as_an_offer(engine: AsyncEngine) -> None:
    store = DatasetStore()
    typed = UNTYPED | {"@id": "offer-2", "@type": "Offer"}
    async with engine.begin() as conn:
        record = DatasetRecord(
            id="d1", title="D", offers=(UNTYPED, typed), created_at=T0, modified_at=T0
        )
        await store.insert(conn, record)
    async with engine.connect() as conn:
        record = await store.get(conn, "d1")
    assert record is not None
    assert record.offers == ({"@type": "Offer", **UNTYPED}, typed)
    assert record.offer("offer-1") == {"@type": "Offer", **UNTYPED}


async def test_an_update_based_on_an_older_row_writes_nothing(engine: AsyncEngine) -> None:
    store = DatasetStore()
    first = DatasetRecord(id="d1", title="First", created_at=T0, modified_at=T0)
    async with engine.begin() as conn:
        await store.insert(conn, first)
    second = replace(first, title="Second", modified_at=T0 + timedelta(seconds=1))
    async with engine.begin() as conn:
        await store.update(conn, second, based_on=T0)
    # A change made from the first version, after the second was written: refused.
    stale = replace(first, title="Third", modified_at=T0 + timedelta(seconds=2))
    with pytest.raises(ConflictError, match="changed after it was read"):
        async with engine.begin() as conn:
            await store.update(conn, stale, based_on=T0)
    async with engine.connect() as conn:
        stored = await store.get(conn, "d1")
    assert stored is not None
    assert (stored.title, stored.modified_at) == ("Second", T0 + timedelta(seconds=1))
