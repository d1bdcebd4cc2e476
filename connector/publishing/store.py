"""The datasets table: `DatasetRecord`s stored as a JSON document per row, with the
conditional update (`based_on`) that refuses to overwrite a row changed since it was read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.clock import as_utc
from connector.db import deferred
from connector.db.tables import datasets
from connector.errors import ConflictError
from connector.publishing.records import DatasetRecord, Status, check_dataset, with_offer_type

_GET = sa.select(datasets).where(datasets.c.id == sa.bindparam("id"))
_Row, _PG_GET = deferred.select_text(datasets, "id = $1")


def _record(row: Any) -> DatasetRecord:
    doc = json.loads(row.document)
    return DatasetRecord(
        id=row.id,
        title=row.title,
        description=doc.get("description", ""),
        formats=tuple(doc.get("formats", ())),
        # Rows stored before offers got their @type on the way in (they passed as Offers).
        offers=tuple(with_offer_type(o) for o in doc.get("offers", ())),
        metadata=doc.get("metadata", {}),
        scope=doc.get("scope"),
        status=row.status,
        created_at=as_utc(row.created_at),
        modified_at=as_utc(row.modified_at),
    )


def _document(record: DatasetRecord) -> str:
    return json.dumps(
        {
            "description": record.description,
            "formats": list(record.formats),
            "offers": list(record.offers),
            "metadata": record.metadata,
            **({"scope": record.scope} if record.scope is not None else {}),
        }
    )


class DatasetStore:
    async def get(self, conn: AsyncConnection, id: str) -> DatasetRecord | None:
        if conn.dialect.name == "postgresql":  # read on every contract request: on the driver
            # Before the transaction has begun, a statement of its own (the same under READ
            # COMMITTED for a read that locks nothing), so that a contract request's
            # transaction can still write in one statement without BEGIN and COMMIT.
            rows = await deferred.read_unbegun(conn, _PG_GET, (id,))
            return _record(_Row(*rows[0])) if rows else None
        row = (await conn.execute(_GET, {"id": id})).first()
        return _record(row) if row else None

    async def list(
        self, conn: AsyncConnection, *, status: Status | None = "published"
    ) -> list[DatasetRecord]:
        query = sa.select(datasets).order_by(datasets.c.id)
        if status is not None:
            query = query.where(datasets.c.status == status)
        return [_record(r) for r in (await conn.execute(query)).all()]

    async def insert(self, conn: AsyncConnection, record: DatasetRecord) -> None:
        check_dataset(record)
        if await self.get(conn, record.id):
            raise ConflictError(f"dataset {record.id} exists already")
        await conn.execute(
            datasets.insert().values(
                id=record.id,
                title=record.title,
                status=record.status,
                document=_document(record),
                created_at=record.created_at,
                modified_at=record.modified_at,
            )
        )

    async def update(
        self, conn: AsyncConnection, record: DatasetRecord, *, based_on: datetime
    ) -> None:
        """Metadata, offers and formats; never the status (``set_status``), so an edit or a
        statistics refresh racing with a retirement cannot publish the dataset again.

        ``based_on`` is the ``modified_at`` of the row the new record was made from: if the row
        has changed since (another edit, a statistics refresh, a retirement), nothing is
        written and a 409 says so, instead of one change silently undoing the other."""
        check_dataset(record)
        result = await conn.execute(
            datasets.update()
            .where(datasets.c.id == record.id, datasets.c.modified_at == based_on)
            .values(
                title=record.title,
                document=_document(record),
                modified_at=record.modified_at,
            )
        )
        if result.rowcount != 1:
            raise ConflictError(
                f"dataset {record.id} changed after it was read (as last modified at "
                f"{based_on.isoformat()}); read it again and repeat the change"
            )

    async def set_status(
        self, conn: AsyncConnection, id: str, status: Status, modified_at: datetime
    ) -> None:
        await conn.execute(
            datasets.update()
            .where(datasets.c.id == id)
            .values(status=status, modified_at=modified_at)
        )
