"""Agreements in SQL (``connector.exchange.ports.AgreementStore``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.clock import as_utc
from connector.db import deferred
from connector.db.database import Database, run
from connector.db.documents import dumps, loads
from connector.db.tables import agreements
from connector.dsp.agreement import AgreementRecord
from connector.dsp.states import Role

_COLUMNS = tuple(c.name for c in agreements.c)
_b = sa.bindparam
_GET = sa.select(agreements).where(agreements.c.id == _b("id"))
_GET_LOCKED = _GET.with_for_update()
_PG_INSERT = deferred.insert_text("agreements", _COLUMNS, suffix=" ON CONFLICT (id) DO NOTHING")


def _agreement(row: sa.Row[Any]) -> AgreementRecord:
    return AgreementRecord(
        id=row.id,
        negotiation_id=row.negotiation_id,
        role=Role(row.role),
        dataset_id=row.dataset_id,
        provider_did=row.provider_did,
        consumer_did=row.consumer_did,
        agreement=loads(row.agreement),
        provider_signature=row.provider_signature,
        consumer_signature=row.consumer_signature,
        uses=row.uses,
        epsilon_spent=row.epsilon_spent,
        created_at=as_utc(row.created_at),
    )


class SqlAgreementStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        insert = pg_insert if db.postgresql else sqlite_insert
        self._insert = insert(agreements).on_conflict_do_nothing(index_elements=[agreements.c.id])

    async def insert(self, conn: AsyncConnection, a: AgreementRecord) -> None:
        row = {
            "id": a.id,
            "negotiation_id": a.negotiation_id,
            "role": a.role,
            "dataset_id": a.dataset_id,
            "provider_did": a.provider_did,
            "consumer_did": a.consumer_did,
            "agreement": dumps(a.agreement),
            "provider_signature": a.provider_signature,
            "consumer_signature": a.consumer_signature,
            "uses": a.uses,
            "epsilon_spent": a.epsilon_spent,
            "created_at": a.created_at,
        }
        args = tuple(row[c] for c in _COLUMNS)
        await deferred.write(conn, deferred.Write(self._insert, row, "a+", _PG_INSERT, args, a.id))

    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> AgreementRecord | None:
        row = (await run(conn, _GET_LOCKED if for_change else _GET, {"id": id})).first()
        return _agreement(row) if row else None

    async def list(self, conn: AsyncConnection) -> list[AgreementRecord]:
        query = sa.select(agreements).order_by(agreements.c.created_at)
        return [_agreement(r) for r in (await run(conn, query)).all()]

    async def spend(
        self, conn: AsyncConnection, id: str, *, uses: int = 1, epsilon: float = 0.0
    ) -> None:
        await run(
            conn,
            agreements.update()
            .where(agreements.c.id == id)
            .values(
                uses=agreements.c.uses + uses, epsilon_spent=agreements.c.epsilon_spent + epsilon
            ),
        )
