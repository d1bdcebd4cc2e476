"""Transfers in SQL (``connector.exchange.ports.TransferStore``): pids, state, parties and
agreement as columns, the rest (format, addresses, termination or suspension, received
messages) as one JSON document."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.clock import as_utc
from connector.db.database import Database, run
from connector.db.documents import dumps, loads
from connector.db.tables import transfers
from connector.dsp.states import Role, TransferState
from connector.dsp.transfer import Transfer
from connector.dsp.transfer_messages import DataAddress

COLUMNS = (
    "id",
    "role",
    "state",
    "provider_pid",
    "consumer_pid",
    "agreement_id",
    "counterparty_did",
    "created_at",
    "updated_at",
)


def _row(t: Transfer) -> dict[str, Any]:
    doc = {
        "format": t.format,
        "counterparty_address": t.counterparty_address,
        "data_address": t.data_address.model_dump(by_alias=True) if t.data_address else None,
        "code": t.code,
        "reason": list(t.reason),
        "terminated_by": t.terminated_by,
        "suspended_by": t.suspended_by,
        "received": list(t.received) if t.received is not None else None,
    }
    return {**{c: getattr(t, c) for c in COLUMNS}, "document": dumps(doc)}


def _transfer(row: sa.Row[Any]) -> Transfer:
    doc = loads(row.document)
    received = doc.get("received", None)
    return Transfer(
        id=row.id,
        role=Role(row.role),
        state=TransferState(row.state),
        provider_pid=row.provider_pid,
        consumer_pid=row.consumer_pid,
        agreement_id=row.agreement_id,
        format=doc.get("format"),
        counterparty_did=row.counterparty_did,
        counterparty_address=doc.get("counterparty_address"),
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        received=tuple(received) if received is not None else None,
        data_address=DataAddress.model_validate(doc["data_address"])
        if doc.get("data_address")
        else None,
        code=doc.get("code"),
        reason=tuple(doc.get("reason") or ()),
        terminated_by=Role(doc["terminated_by"]) if doc.get("terminated_by") else None,
        suspended_by=Role(doc["suspended_by"]) if doc.get("suspended_by") else None,
    )


class SqlTransferStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> Transfer | None:
        query = sa.select(transfers).where(transfers.c.id == id)
        row = (await run(conn, query.with_for_update() if for_change else query)).first()
        return _transfer(row) if row else None

    async def find(
        self, conn: AsyncConnection, role: Role, counterparty_did: str, consumer_pid: str
    ) -> Transfer | None:
        query = sa.select(transfers).where(
            transfers.c.role == role,
            transfers.c.counterparty_did == counterparty_did,
            transfers.c.consumer_pid == consumer_pid,
        )
        row = (await run(conn, query)).first()
        return _transfer(row) if row else None

    async def insert(self, conn: AsyncConnection, t: Transfer) -> None:
        await run(conn, transfers.insert().values(**_row(t)))

    async def update(self, conn: AsyncConnection, t: Transfer) -> None:
        await run(conn, transfers.update().where(transfers.c.id == t.id).values(**_row(t)))

    async def list(self, conn: AsyncConnection, *, role: Role | None = None) -> list[Transfer]:
        query = sa.select(transfers).order_by(transfers.c.created_at)
        if role is not None:
            query = query.where(transfers.c.role == role)
        return [_transfer(r) for r in (await run(conn, query)).all()]
