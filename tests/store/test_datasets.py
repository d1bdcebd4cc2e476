"""The dataset store (SQLite and PostgreSQL): offers are Offers on the way out, whatever a row
written before the management API filled in ``@type`` holds."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from connector.datasets import DatasetRecord, DatasetStore

UNTYPED = {"@id": "offer-1", "permission": [{"action": "use"}]}


async def test_an_offer_stored_without_type_reads_back_as_an_offer(engine: AsyncEngine) -> None:
    store = DatasetStore()
    typed = UNTYPED | {"@id": "offer-2", "@type": "Offer"}
    async with engine.begin() as conn:
        await store.insert(conn, DatasetRecord(id="d1", title="D", offers=(UNTYPED, typed)))
    async with engine.connect() as conn:
        record = await store.get(conn, "d1")
    assert record is not None
    assert record.offers == ({"@type": "Offer", **UNTYPED}, typed)
    assert record.offer("offer-1") == {"@type": "Offer", **UNTYPED}
