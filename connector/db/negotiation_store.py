"""Negotiations in SQL (``connector.exchange.ports.NegotiationStore``).

A negotiation is a row: its pids, state and parties as columns (looked up by), the rest (offer,
agreement, signatures, termination, received messages) as one JSON document. On PostgreSQL its
hot statements go to the driver as text (``connector/db/deferred.py``), and a row read
``for_change`` in ``Database.attempt`` is written only if unchanged since (its ``xmin``).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.clock import as_utc
from connector.db import deferred
from connector.db.database import Database, run, state
from connector.db.documents import dumps, loads
from connector.db.engine import single_statement
from connector.db.tables import negotiations
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role

COLUMNS = (
    "id",
    "role",
    "state",
    "provider_pid",
    "consumer_pid",
    "counterparty_did",
    "counterparty_address",
    "created_at",
    "updated_at",
)
_WRITTEN = (*COLUMNS, "document", "dataset_id")


def _row(n: Negotiation) -> dict[str, Any]:
    doc = {f.name: getattr(n, f.name) for f in fields(n) if f.name not in COLUMNS}
    doc["termination_reason"] = list(n.termination_reason)
    return {
        **{c: getattr(n, c) for c in COLUMNS},
        "document": dumps(doc),
        "dataset_id": _target(n.offer),
    }


def _target(offer: dict[str, Any] | None) -> str | None:
    target = (offer or {}).get("target")
    if isinstance(target, dict):
        target = target.get("@id")
    return str(target) if target else None


def negotiation_of(row: Any) -> Negotiation:
    doc = loads(row.document)
    received = doc.get("received", None)
    return Negotiation(
        id=row.id,
        role=Role(row.role),
        state=NegotiationState(row.state),
        provider_pid=row.provider_pid,
        consumer_pid=row.consumer_pid,
        counterparty_did=row.counterparty_did,
        counterparty_address=row.counterparty_address,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        received=tuple(received) if received is not None else None,
        offer=doc.get("offer"),
        agreement=doc.get("agreement"),
        provider_signature=doc.get("provider_signature"),
        consumer_signature=doc.get("consumer_signature"),
        termination_code=doc.get("termination_code"),
        termination_reason=tuple(doc.get("termination_reason") or ()),
        terminated_by=Role(doc["terminated_by"]) if doc.get("terminated_by") else None,
    )


# Statements on the DSP hot path, built once: building a statement costs about as much as
# executing a cached one (SQLAlchemy still caches the compiled SQL either way).
_b = sa.bindparam
_GET = sa.select(negotiations).where(negotiations.c.id == _b("id"))
_GET_LOCKED = _GET.with_for_update()
_FIND_BY_CONSUMER_PID = sa.select(negotiations).where(
    negotiations.c.role == _b("role"),
    negotiations.c.counterparty_did == _b("did"),
    negotiations.c.consumer_pid == _b("pid"),
)
_FIND_BY_PROVIDER_PID = sa.select(negotiations).where(
    negotiations.c.role == _b("role"),
    negotiations.c.counterparty_did == _b("did"),
    negotiations.c.provider_pid == _b("pid"),
)
# The reads as PostgreSQL text, run on the driver (deferred.run): rows as named tuples.
_Row, _PG_GET = deferred.select_text(negotiations, "id = $1")
_PG_GET_LOCKED = _PG_GET + " FOR UPDATE"
# With the row's version (xmin: the transaction that wrote it), for an optimistic write.
_PG_GET_VERSIONED = _PG_GET.replace("SELECT ", "SELECT xmin, ", 1)
_INSERT = negotiations.insert()
_UPDATE = (
    negotiations.update()
    .where(negotiations.c.id == _b("_id"))
    .values({c: _b(c) for c in _WRITTEN if c != "id"})
)
# The update of a row read with its version: PostgreSQL raises (SQLSTATE 40001, migration
# 0007) when the row has changed since, so nothing else in the statement is written either.
_EXPECT_VERSION = "phems_expect_version(xmin, CAST(:_v AS xid), 'negotiation ' || :_id)"
_UPDATE_EXPECTING = _UPDATE.where(sa.text(_EXPECT_VERSION))
_SET_APPROVAL = (
    negotiations.update().where(negotiations.c.id == _b("_id")).values(approval=_b("approval"))
)
_SET_APPROVAL_EXPECTING = _SET_APPROVAL.where(sa.text(_EXPECT_VERSION))


def _pg_set_approval(o: int) -> str:
    return f"UPDATE negotiations SET approval = ${o + 1} WHERE id = ${o + 2}"


def _pg_set_approval_expecting(o: int) -> str:
    return (
        f"{_pg_set_approval(o)} AND "
        f"phems_expect_version(xmin, ${o + 3}::xid, 'negotiation ' || ${o + 2})"
    )


ACK = (
    negotiations.update()
    .where(
        negotiations.c.id == _b("_id"),
        sa.or_(negotiations.c.provider_pid.is_(None), negotiations.c.provider_pid == _b("ppid")),
        sa.or_(negotiations.c.consumer_pid.is_(None), negotiations.c.consumer_pid == _b("cpid")),
    )
    .values(provider_pid=_b("ppid"), consumer_pid=_b("cpid"), updated_at=_b("now"))
)


# The same writes as PostgreSQL text, for statements combined by connector/db/deferred.py.
def _pg_update(o: int) -> str:
    columns = [c for c in _WRITTEN if c != "id"]
    sets = ", ".join(f"{c} = ${o + i}" for i, c in enumerate(columns, start=1))
    return f"UPDATE negotiations SET {sets} WHERE id = ${o + len(columns) + 1}"


def _pg_update_expecting(o: int) -> str:
    """``_pg_update`` only if the row still has the version read (the last parameter)."""
    k = o + len(_WRITTEN)  # the id's parameter
    return f"{_pg_update(o)} AND phems_expect_version(xmin, ${k + 1}::xid, 'negotiation ' || ${k})"


_PG_INSERT = deferred.insert_text("negotiations", _WRITTEN)


def _version_key(id: str) -> tuple[str, str]:
    return ("negotiation version", id)


class SqlNegotiationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(
        self, conn: AsyncConnection, id: str, *, for_change: bool = False
    ) -> Negotiation | None:
        if self.db.postgresql:
            tx = state(conn)
            if for_change and tx.optimistic:
                found = await self._read_versioned(conn, id)
                if found is None:
                    return None
                n, version = found
                tx.values[_version_key(id)] = version
                return n
            await deferred.flush(conn)
            rows = await deferred.run(conn, _PG_GET_LOCKED if for_change else _PG_GET, (id,))
            return negotiation_of(_Row(*rows[0])) if rows else None
        row = (await run(conn, _GET_LOCKED if for_change else _GET, {"id": id})).first()
        return negotiation_of(row) if row else None

    async def _read_versioned(
        self, conn: AsyncConnection, id: str
    ) -> tuple[Negotiation, int] | None:
        """The negotiation and its row version, read without a lock and, first in a
        transaction, without beginning it (``deferred.read_unbegun``)."""
        await deferred.flush(conn)
        rows = await deferred.read_unbegun(conn, _PG_GET_VERSIONED, (id,))
        if not rows:
            return None
        return negotiation_of(_Row(*rows[0][1:])), int(rows[0][0])

    async def find(
        self,
        conn: AsyncConnection,
        role: Role,
        counterparty_did: str,
        *,
        consumer_pid: str | None = None,
        provider_pid: str | None = None,
    ) -> Negotiation | None:
        if (consumer_pid is None) == (provider_pid is None):
            raise ValueError("find a negotiation by one pid: consumer_pid or provider_pid")
        query = _FIND_BY_CONSUMER_PID if consumer_pid is not None else _FIND_BY_PROVIDER_PID
        params = {"role": str(role), "did": counterparty_did, "pid": consumer_pid or provider_pid}
        row = (await run(conn, query, params)).first()
        return negotiation_of(row) if row else None

    async def insert(self, conn: AsyncConnection, n: Negotiation) -> None:
        row = _row(n)
        args = tuple(row[c] for c in _WRITTEN)
        await deferred.write(conn, deferred.Write(_INSERT, row, "n+", _PG_INSERT, args, n.id))

    async def update(self, conn: AsyncConnection, n: Negotiation) -> None:
        """Write ``n``'s row. If it was read ``for_change`` in an optimistic transaction and
        has changed since, the statement fails with ``ChangedSinceRead`` and writes nothing,
        the other writes combined with it included (``Database.attempt`` runs it again)."""
        row = _row(n)
        args: tuple[Any, ...] = (*(row[c] for c in _WRITTEN if c != "id"), n.id)
        row["_id"] = row.pop("id")
        version = state(conn).values.pop(_version_key(n.id), None)
        if version is None:
            write = deferred.Write(_UPDATE, row, "n=", _pg_update, args, n.id)
        else:
            row["_v"] = version
            write = deferred.Write(
                _UPDATE_EXPECTING, row, "n=v", _pg_update_expecting, (*args, version), n.id
            )
        await deferred.write(conn, write)

    async def record_ack(
        self, id: str, *, provider_pid: str, consumer_pid: str, now: datetime
    ) -> bool:
        params = {"_id": id, "ppid": provider_pid, "cpid": consumer_pid, "now": now}
        try:
            async with single_statement(self.db.engine) as conn:
                result = await conn.execute(ACK, params)
        except IntegrityError:  # uq_negotiation_ppid: a peer reusing its pid
            return False
        return bool(result.rowcount == 1)

    async def set_approval(self, conn: AsyncConnection, id: str, approval: str | None) -> None:
        """Like ``update``: the first write of a row read ``for_change`` in an optimistic
        transaction is the one that checks its version (a later write then finds the row
        written by this transaction itself)."""
        version = state(conn).values.pop(_version_key(id), None)
        params: dict[str, Any] = {"_id": id, "approval": approval}
        if version is None:
            write = deferred.Write(
                _SET_APPROVAL, params, "n=a", _pg_set_approval, (approval, id), id
            )
        else:
            params["_v"] = version
            write = deferred.Write(
                _SET_APPROVAL_EXPECTING,
                params,
                "n=av",
                _pg_set_approval_expecting,
                (approval, id, version),
                id,
            )
        await deferred.write(conn, write)

    async def approval(self, conn: AsyncConnection, id: str) -> str | None:
        query = sa.select(negotiations.c.approval).where(negotiations.c.id == id)
        value = (await run(conn, query)).scalar_one_or_none()
        return str(value) if value else None

    async def list(
        self, conn: AsyncConnection, *, role: Role | None = None, approval: str | None = None
    ) -> list[Negotiation]:
        query = sa.select(negotiations).order_by(negotiations.c.created_at)
        if role is not None:
            query = query.where(negotiations.c.role == role)
        if approval is not None:
            query = query.where(negotiations.c.approval == approval)
        return [negotiation_of(r) for r in (await run(conn, query)).all()]
