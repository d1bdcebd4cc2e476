"""Datasets this connector offers: metadata, distributions (transfer formats) and ODRL offers.

Offers are validated by the policy engine when a dataset is created or updated, so a policy
with an unknown operand never reaches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.formats import FORMATS, Format
from connector.clock import as_utc
from connector.db import deferred
from connector.db.tables import datasets
from connector.errors import BadRequestError, ConflictError
from connector.fulfilment.scope import DatasetScope
from connector.policy import Policy, PolicyType, validate_policy

Status = Literal["published", "retired"]


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    title: str
    description: str = ""
    formats: tuple[str, ...] = (Format.AGGREGATE.value,)
    offers: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] | None = None  # connector.fulfilment.scope.DatasetScope, as JSON
    status: Status = "published"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def offer(self, offer_id: str) -> dict[str, Any] | None:
        return next((o for o in self.offers if o.get("@id") == offer_id), None)

    def parsed_offers(self) -> list[tuple[dict[str, Any], Policy]]:
        return [(o, validate_policy(o)) for o in self.offers]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "formats": list(self.formats),
            "offers": list(self.offers),
            "metadata": self.metadata,
            "scope": self.scope,
            "status": self.status,
            "createdAt": self.created_at.isoformat(),
            "modifiedAt": self.modified_at.isoformat(),
        }


def check_dataset(record: DatasetRecord) -> None:
    """Refuse unknown formats, offers without ``@id`` or with invalid policies."""
    unknown = [f for f in record.formats if f not in FORMATS]
    if unknown or not record.formats:
        raise BadRequestError(
            f"formats {unknown or '[]'} not supported; use one or more of {', '.join(FORMATS)}"
        )
    DatasetScope.parse(record.scope)
    ids = [o.get("@id") for o in record.offers]
    if any(not isinstance(i, str) or not i for i in ids):
        raise BadRequestError("every offer needs an '@id'")
    if len(set(ids)) != len(ids):
        raise BadRequestError("offer '@id's must be unique within a dataset")
    for offer in record.offers:
        if offer.get("target") not in (None, record.id):
            raise BadRequestError(f"offer {offer['@id']}: target must be the dataset or absent")
        policy = validate_policy(with_offer_type(offer))
        if policy.type is not PolicyType.OFFER:
            raise BadRequestError(f"offer {offer['@id']}: @type must be Offer, not {policy.type}")


def with_offer_type(offer: dict[str, Any]) -> dict[str, Any]:
    """A dataset's offer is an ``Offer`` (DSP: every ``hasPolicy`` item): one written without
    ``@type`` is stored and published with it."""
    return offer if "@type" in offer else {"@type": "Offer", **offer}


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
