"""Persistence of negotiations, transfers, agreements and the outbox (one SQL module).

Every write happens inside a caller's transaction (``async with store.transaction() as conn``),
so a state change, its outbox message and its audit entry commit together or not at all.
Rows are locked with ``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite serialises writers), except
where a received DSP message updates a negotiation on PostgreSQL: that write is optimistic
(``get_negotiation_versioned``, ``update_negotiation(expect=)``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.clock import as_utc
from connector.db import deferred
from connector.db.batching import GroupWriter
from connector.db.deferred import ChangedSinceRead as ChangedSinceRead
from connector.db.engine import no_flush_wait, single_statement
from connector.db.tables import agreements, negotiations, outbox, transfers
from connector.dsp.negotiation import Negotiation
from connector.dsp.states import NegotiationState, Role, TransferState
from connector.dsp.transfer import Transfer
from connector.dsp.transfer_messages import DataAddress

# What json.dumps(separators=(",", ":"), default=str) wrote, several times faster: datetimes
# and dataclasses (none expected) still go through str(), keys that are not strings are
# written as strings.
_JSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str, option=_JSON_OPTIONS).decode()


def _loads(text: str) -> Any:
    """A stored document. orjson reads what we write several times faster than ``json``;
    text it refuses (``NaN`` from an older writer, integers beyond 64 bits) goes to ``json``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


# -- negotiations -------------------------------------------------------------------------

_N_COLUMNS = (
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


def _negotiation_row(n: Negotiation) -> dict[str, Any]:
    doc = {f.name: getattr(n, f.name) for f in fields(n) if f.name not in _N_COLUMNS}
    doc["termination_reason"] = list(n.termination_reason)
    return {
        **{c: getattr(n, c) for c in _N_COLUMNS},
        "document": _json(doc),
        "dataset_id": _target(n.offer),
    }


def _target(offer: dict[str, Any] | None) -> str | None:
    target = (offer or {}).get("target")
    if isinstance(target, dict):
        target = target.get("@id")
    return str(target) if target else None


def _negotiation(row: Any) -> Negotiation:
    doc = _loads(row.document)
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
        offer=doc.get("offer"),
        agreement=doc.get("agreement"),
        provider_signature=doc.get("provider_signature"),
        consumer_signature=doc.get("consumer_signature"),
        termination_code=doc.get("termination_code"),
        termination_reason=tuple(doc.get("termination_reason") or ()),
        terminated_by=Role(doc["terminated_by"]) if doc.get("terminated_by") else None,
    )


# -- transfers ----------------------------------------------------------------------------

_T_COLUMNS = (
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


def _transfer_row(t: Transfer) -> dict[str, Any]:
    doc = {
        "format": t.format,
        "counterparty_address": t.counterparty_address,
        "data_address": t.data_address.model_dump(by_alias=True) if t.data_address else None,
        "code": t.code,
        "reason": list(t.reason),
        "terminated_by": t.terminated_by,
        "suspended_by": t.suspended_by,
    }
    return {**{c: getattr(t, c) for c in _T_COLUMNS}, "document": _json(doc)}


def _transfer(row: sa.Row[Any]) -> Transfer:
    doc = _loads(row.document)
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
        data_address=DataAddress.model_validate(doc["data_address"])
        if doc.get("data_address")
        else None,
        code=doc.get("code"),
        reason=tuple(doc.get("reason") or ()),
        terminated_by=Role(doc["terminated_by"]) if doc.get("terminated_by") else None,
        suspended_by=Role(doc["suspended_by"]) if doc.get("suspended_by") else None,
    )


@dataclass(frozen=True)
class AgreementRecord:
    id: str
    negotiation_id: str
    role: Role
    dataset_id: str
    provider_did: str
    consumer_did: str
    agreement: dict[str, Any]
    provider_signature: str
    consumer_signature: str
    uses: int
    epsilon_spent: float
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "negotiationId": self.negotiation_id,
            "role": str(self.role),
            "datasetId": self.dataset_id,
            "providerDid": self.provider_did,
            "consumerDid": self.consumer_did,
            "agreement": self.agreement,
            "providerSignature": self.provider_signature,
            "consumerSignature": self.consumer_signature,
            "uses": self.uses,
            "epsilonSpent": self.epsilon_spent,
            "createdAt": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class OutboxItem:
    id: int
    process_kind: str
    process_id: str
    message_type: str
    url: str
    audience: str
    body: dict[str, Any]
    attempts: int
    counterparty_pid: str | None = None  # at the claim: fills a ``{pid}`` in ``url``


# Statements on the DSP hot path, built once: building a statement costs about as much as
# executing a cached one (SQLAlchemy still caches the compiled SQL either way).
_b = sa.bindparam
_ENQUEUED = "dsp_enqueued"  # conn.info key: process ids whose messages a transaction queued
_LEASED = "dsp_leased"  # conn.info key: messages it queued leased to this replica (sent now)
_GET_N = sa.select(negotiations).where(negotiations.c.id == _b("id"))
_GET_N_LOCKED = _GET_N.with_for_update()
_FIND_N = sa.select(negotiations).where(
    negotiations.c.role == _b("role"),
    negotiations.c.counterparty_did == _b("did"),
    negotiations.c.consumer_pid == _b("pid"),
)
# The reads as PostgreSQL text, run on the driver (deferred.run): rows as named tuples.
_NRow, _PG_GET_N = deferred.select_text(negotiations, "id = $1")
_PG_GET_N_LOCKED = _PG_GET_N + " FOR UPDATE"
# With the row's version (xmin: the transaction that wrote it), for an optimistic write.
_PG_GET_N_VERSIONED = _PG_GET_N.replace("SELECT ", "SELECT xmin, ", 1)
_INSERT_N = negotiations.insert()
_N_WRITTEN = (*_N_COLUMNS, "document", "dataset_id")
_UPDATE_N = (
    negotiations.update()
    .where(negotiations.c.id == _b("_id"))
    .values({c: _b(c) for c in _N_WRITTEN if c != "id"})
)
# The update of a row read with its version: PostgreSQL raises (SQLSTATE 40001, migration
# 0007) when the row has changed since, so nothing else in the statement is written either.
_EXPECT_VERSION = "phems_expect_version(xmin, CAST(:_v AS xid), 'negotiation ' || :_id)"
_UPDATE_N_EXPECTING = _UPDATE_N.where(sa.text(_EXPECT_VERSION))
_ACK_N = (
    negotiations.update()
    .where(
        negotiations.c.id == _b("_id"),
        sa.or_(negotiations.c.provider_pid.is_(None), negotiations.c.provider_pid == _b("ppid")),
        sa.or_(negotiations.c.consumer_pid.is_(None), negotiations.c.consumer_pid == _b("cpid")),
    )
    .values(provider_pid=_b("ppid"), consumer_pid=_b("cpid"), updated_at=_b("now"))
)
_A_COLUMNS = tuple(c.name for c in agreements.c)
_O_COLUMNS = (
    "process_kind",
    "process_id",
    "message_type",
    "url",
    "audience",
    "body",
    "attempts",
    "next_attempt_at",
    "created_at",
)


# The same writes as PostgreSQL text, for statements combined by connector/db/deferred.py.
def _pg_update_n(o: int) -> str:
    columns = [c for c in _N_WRITTEN if c != "id"]
    sets = ", ".join(f"{c} = ${o + i}" for i, c in enumerate(columns, start=1))
    return f"UPDATE negotiations SET {sets} WHERE id = ${o + len(columns) + 1}"


def _pg_update_n_expecting(o: int) -> str:
    """``_pg_update_n`` only if the row still has the version read (the last parameter)."""
    k = o + len(_N_WRITTEN)  # the id's parameter
    return (
        f"{_pg_update_n(o)} AND phems_expect_version(xmin, ${k + 1}::xid, 'negotiation ' || ${k})"
    )


_PG_INSERT_N = deferred.insert_text("negotiations", _N_WRITTEN)
_PG_UPDATE_N = _pg_update_n
_PG_INSERT_A = deferred.insert_text("agreements", _A_COLUMNS, suffix=" ON CONFLICT (id) DO NOTHING")
_PG_ENQUEUE = deferred.insert_text("outbox", _O_COLUMNS)


def _pg_enqueue_leased(o: int) -> str:
    """The outbox insert of a message its replica sends itself at once after the commit:
    leased at the insert (its first attempt, due again when the lease ends) unless the
    process has an older unsent message, which must go first (then due at once, for the
    claim, as usual). Returns the id and whether it was leased. The caller holds the
    process's row lock (or creates the process): no other transaction queues for it
    meanwhile. Parameters: ``_O_LEASED``."""
    kind, pid, type_, url, audience, body, lease_until, now = (f"${o + i}" for i in range(1, 9))
    return (
        f"INSERT INTO outbox ({', '.join(_O_COLUMNS)}) "
        f"SELECT {kind}::varchar, {pid}::varchar, {type_}::varchar, {url}::varchar, "
        f"{audience}::varchar, {body}::text, CASE WHEN g.free THEN 1 ELSE 0 END, "
        f"CASE WHEN g.free THEN {lease_until}::timestamptz ELSE {now}::timestamptz END, "
        f"{now}::timestamptz FROM (SELECT NOT EXISTS (SELECT FROM outbox o "
        f"WHERE o.process_id = {pid}::varchar AND o.sent_at IS NULL "
        f"AND o.failed_at IS NULL)) AS g (free) RETURNING id, attempts = 1"
    )


_O_LEASED = ("process_kind", "process_id", "message_type", "url", "audience", "body")


# A URL naming the counterparty's pid before it is known; filled in at the claim.
PID_PLACEHOLDER = quote("{pid}", safe="")
_GET_A = sa.select(agreements).where(agreements.c.id == _b("id"))
_GET_A_LOCKED = _GET_A.with_for_update()
_ENQUEUE = outbox.insert()
_MARK_SENT = (
    outbox.update().where(outbox.c.id == _b("_id")).values(sent_at=_b("sent_at"), body="{}")
)


# PostgreSQL: the sent marks of concurrent deliveries as one statement (see GroupWriter),
# committed without waiting for the WAL flush (see mark_sent).
_PG_MARK_SENT_MANY = (
    "UPDATE outbox SET sent_at = t.s, body = '{}' "
    "FROM unnest($1::bigint[], $2::timestamptz[]) AS t(i, s) "
    "WHERE outbox.id = t.i AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"
)

# The same with ACKs: the negotiations' pids from the counterparty's ACK to our initial message
# and the message's sent mark, together (as _ACK_N does for one); returns the negotiations
# updated. Both are lost together in a database crash, if at all: the message is sent again
# and the counterparty answers the repeat with the same ACK.
_PG_ACK_AND_MARK_SENT_MANY = (
    "WITH t AS (SELECT * FROM unnest($1::bigint[], $2::timestamptz[], "
    "$3::text[], $4::text[], $5::text[]) "
    "AS t(i, s, nid, ppid, cpid)), "
    "ack AS (UPDATE negotiations AS n SET provider_pid = t.ppid, consumer_pid = t.cpid, "
    "updated_at = t.s FROM t WHERE t.nid IS NOT NULL AND n.id = t.nid "
    "AND (n.provider_pid IS NULL OR n.provider_pid = t.ppid) "
    "AND (n.consumer_pid IS NULL OR n.consumer_pid = t.cpid) RETURNING n.id), "
    "sent AS (UPDATE outbox SET sent_at = t.s, body = '{}' FROM t WHERE outbox.id = t.i) "
    "SELECT id FROM ack WHERE (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"
)


@dataclass(frozen=True)
class _Ack:
    negotiation_id: str
    provider_pid: str
    consumer_pid: str


def _claim_statement(dialect: str) -> sa.Update:
    """Lease up to ``limit`` due messages, at most one per process (its oldest unsent)."""
    older = outbox.alias("older")
    due = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.sent_at.is_(None),
            outbox.c.failed_at.is_(None),
            outbox.c.next_attempt_at <= _b("now"),
            ~sa.exists().where(
                older.c.process_id == outbox.c.process_id,
                older.c.sent_at.is_(None),
                older.c.failed_at.is_(None),
                older.c.id < outbox.c.id,
            ),
        )
        .order_by(outbox.c.id)
        .limit(_b("limit"))
        .with_for_update(skip_locked=True, of=outbox)
    )
    return (
        outbox.update()
        .where(outbox.c.id.in_(due.scalar_subquery()), no_flush_wait(dialect))
        .values(next_attempt_at=_b("lease_until"), attempts=outbox.c.attempts + 1)
        .returning(*outbox.c, _counterparty_pid().label("counterparty_pid"))
    )


def _counterparty_pid() -> sa.ColumnElement[Any]:
    """The counterparty's pid of the message's process (NULL until its ACK is recorded), for
    a URL with the ``{pid}`` placeholder: read with the claim, not in a transaction of its
    own before each send."""

    def of(table: sa.Table) -> sa.ScalarSelect[Any]:
        pid = sa.case(
            (table.c.role == Role.CONSUMER.value, table.c.provider_pid),
            else_=table.c.consumer_pid,
        )
        return sa.select(pid).where(table.c.id == outbox.c.process_id).scalar_subquery()

    return sa.case((outbox.c.process_kind == "negotiation", of(negotiations)), else_=of(transfers))


class DspStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        # PostgreSQL: a received message is applied to the negotiation as read, without a
        # lock, and written only if the row is unchanged (get_negotiation_versioned,
        # update_negotiation(expect=)): two statements instead of BEGIN, SELECT ... FOR
        # UPDATE, the write and COMMIT. SQLite serialises writers and locks as before.
        self.optimistic = self._dialect == "postgresql"
        self._claim = _claim_statement(self._dialect)
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        self._insert_agreement = insert(agreements).on_conflict_do_nothing(
            index_elements=[agreements.c.id]
        )
        self._mark_sent_alone = _MARK_SENT.where(no_flush_wait(self._dialect))
        self._sent_marks: GroupWriter[tuple[int, datetime, _Ack | None], bool] | None = (
            GroupWriter(self._mark_sent_many) if self._dialect == "postgresql" else None
        )
        # Called after a commit with the process ids whose messages it queued (to be claimed).
        self.on_enqueued: Callable[[list[str]], None] | None = None
        # Called after a commit with the messages it queued already leased to this replica
        # (PostgreSQL, while a sender is attached): sent at once, with no claim. ``lease``
        # must be longer than one send, as the claim's (it is the sender's).
        self.on_leased: Callable[[list[OutboxItem]], None] | None = None
        self.lease = timedelta(seconds=15)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for store calls. On PostgreSQL its negotiation, agreement, outbox
        and audit writes are held and sent as one statement before the commit (see
        connector/db/deferred.py); every other statement the store runs sends them first."""
        async with self.engine.begin() as conn:
            # conn.info belongs to the pooled connection: start clean, leave clean.
            conn.info.pop(_ENQUEUED, None)
            conn.info.pop(_LEASED, None)
            if self._dialect == "postgresql":
                deferred.begin(conn)
            try:
                yield conn
                await deferred.flush(conn, last=True)
            finally:
                # A connection found broken was invalidated: its info is gone with it, and
                # touching it would raise (PendingRollbackError) over the real error.
                enqueued: list[str] = []
                leased: list[OutboxItem] = []
                if not conn.invalidated:
                    deferred.end(conn)
                    enqueued = conn.info.pop(_ENQUEUED, [])
                    leased = conn.info.pop(_LEASED, [])
        # Committed: send the messages leased to us, wake the sender for the others.
        if leased and self.on_leased is not None:
            self.on_leased(leased)
        if enqueued and self.on_enqueued is not None:
            self.on_enqueued(enqueued)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads that need no transaction of their own: each statement sees
        what is committed when it runs (on PostgreSQL without BEGIN and COMMIT)."""
        async with single_statement(self.engine) as conn:
            yield conn

    @staticmethod
    async def _run(conn: AsyncConnection, statement: Any, params: Any = None) -> Any:
        """Run a statement in the caller's transaction, after the writes it holds."""
        await deferred.flush(conn)
        return await conn.execute(statement, params)

    # negotiations
    async def get_negotiation(
        self, conn: AsyncConnection, id: str, *, lock: bool = False
    ) -> Negotiation | None:
        if self._dialect == "postgresql":
            await deferred.flush(conn)
            rows = await deferred.run(conn, _PG_GET_N_LOCKED if lock else _PG_GET_N, (id,))
            return _negotiation(_NRow(*rows[0])) if rows else None
        query = _GET_N_LOCKED if lock else _GET_N
        row = (await self._run(conn, query, {"id": id})).first()
        return _negotiation(row) if row else None

    async def get_negotiation_versioned(
        self, conn: AsyncConnection, id: str
    ) -> tuple[Negotiation, int] | None:
        """PostgreSQL (``optimistic``): the negotiation and its row version, for
        ``update_negotiation(..., expect=version)``; read without a lock and, first in a
        transaction, without beginning it (``deferred.read_unbegun``)."""
        await deferred.flush(conn)
        rows = await deferred.read_unbegun(conn, _PG_GET_N_VERSIONED, (id,))
        if not rows:
            return None
        return _negotiation(_NRow(*rows[0][1:])), int(rows[0][0])

    async def find_negotiation(
        self, conn: AsyncConnection, role: Role, counterparty_did: str, consumer_pid: str
    ) -> Negotiation | None:
        params = {"role": str(role), "did": counterparty_did, "pid": consumer_pid}
        row = (await self._run(conn, _FIND_N, params)).first()
        return _negotiation(row) if row else None

    async def find_by_provider_pid(
        self, conn: AsyncConnection, role: Role, counterparty_did: str, provider_pid: str
    ) -> Negotiation | None:
        query = sa.select(negotiations).where(
            negotiations.c.role == role,
            negotiations.c.counterparty_did == counterparty_did,
            negotiations.c.provider_pid == provider_pid,
        )
        row = (await self._run(conn, query)).first()
        return _negotiation(row) if row else None

    async def insert_negotiation(self, conn: AsyncConnection, n: Negotiation) -> None:
        row = _negotiation_row(n)
        args = tuple(row[c] for c in _N_WRITTEN)
        await deferred.write(conn, deferred.Write(_INSERT_N, row, "n+", _PG_INSERT_N, args, n.id))

    async def update_negotiation(
        self, conn: AsyncConnection, n: Negotiation, *, expect: int | None = None
    ) -> None:
        """Write ``n``'s row. ``expect``: the version ``get_negotiation_versioned`` read (the
        row was not locked); if the row has changed since, the statement fails with
        ``ChangedSinceRead`` and writes nothing, the other writes combined with it included."""
        row = _negotiation_row(n)
        args: tuple[Any, ...] = (*(row[c] for c in _N_WRITTEN if c != "id"), n.id)
        row["_id"] = row.pop("id")
        if expect is None:
            write = deferred.Write(_UPDATE_N, row, "n=", _PG_UPDATE_N, args, n.id)
        else:
            row["_v"] = expect
            write = deferred.Write(
                _UPDATE_N_EXPECTING, row, "n=v", _pg_update_n_expecting, (*args, expect), n.id
            )
        await deferred.write(conn, write)

    async def record_negotiation_ack(
        self, id: str, *, provider_pid: str, consumer_pid: str, now: datetime
    ) -> bool:
        """Both pids from the counterparty's ACK to our initial message, as one statement of
        its own; False if there is no such negotiation, a pid it knows differs, or another
        negotiation with the same counterparty already has that providerPid."""
        params = {"_id": id, "ppid": provider_pid, "cpid": consumer_pid, "now": now}
        try:
            async with single_statement(self.engine) as conn:
                result = await conn.execute(_ACK_N, params)
        except IntegrityError:  # uq_negotiation_ppid: a peer reusing its pid
            return False
        return bool(result.rowcount == 1)

    async def set_approval(self, conn: AsyncConnection, id: str, approval: str | None) -> None:
        await self._run(
            conn, negotiations.update().where(negotiations.c.id == id).values(approval=approval)
        )

    async def approval(self, conn: AsyncConnection, id: str) -> str | None:
        query = sa.select(negotiations.c.approval).where(negotiations.c.id == id)
        value = (await self._run(conn, query)).scalar_one_or_none()
        return str(value) if value else None

    async def list_negotiations(
        self, conn: AsyncConnection, *, role: Role | None = None, approval: str | None = None
    ) -> list[Negotiation]:
        query = sa.select(negotiations).order_by(negotiations.c.created_at)
        if role is not None:
            query = query.where(negotiations.c.role == role)
        if approval is not None:
            query = query.where(negotiations.c.approval == approval)
        return [_negotiation(r) for r in (await self._run(conn, query)).all()]

    # transfers
    async def get_transfer(
        self, conn: AsyncConnection, id: str, *, lock: bool = False
    ) -> Transfer | None:
        query = sa.select(transfers).where(transfers.c.id == id)
        row = (await self._run(conn, query.with_for_update() if lock else query)).first()
        return _transfer(row) if row else None

    async def find_transfer(
        self, conn: AsyncConnection, role: Role, counterparty_did: str, consumer_pid: str
    ) -> Transfer | None:
        query = sa.select(transfers).where(
            transfers.c.role == role,
            transfers.c.counterparty_did == counterparty_did,
            transfers.c.consumer_pid == consumer_pid,
        )
        row = (await self._run(conn, query)).first()
        return _transfer(row) if row else None

    async def insert_transfer(self, conn: AsyncConnection, t: Transfer) -> None:
        await self._run(conn, transfers.insert().values(**_transfer_row(t)))

    async def update_transfer(self, conn: AsyncConnection, t: Transfer) -> None:
        await self._run(
            conn, transfers.update().where(transfers.c.id == t.id).values(**_transfer_row(t))
        )

    async def list_transfers(
        self, conn: AsyncConnection, *, role: Role | None = None
    ) -> list[Transfer]:
        query = sa.select(transfers).order_by(transfers.c.created_at)
        if role is not None:
            query = query.where(transfers.c.role == role)
        return [_transfer(r) for r in (await self._run(conn, query)).all()]

    # agreements
    async def insert_agreement(self, conn: AsyncConnection, a: AgreementRecord) -> None:
        """Store an agreement; one already stored under its id is kept as it is (a repeat)."""
        row = {
            "id": a.id,
            "negotiation_id": a.negotiation_id,
            "role": a.role,
            "dataset_id": a.dataset_id,
            "provider_did": a.provider_did,
            "consumer_did": a.consumer_did,
            "agreement": _json(a.agreement),
            "provider_signature": a.provider_signature,
            "consumer_signature": a.consumer_signature,
            "uses": a.uses,
            "epsilon_spent": a.epsilon_spent,
            "created_at": a.created_at,
        }
        args = tuple(row[c] for c in _A_COLUMNS)
        write = deferred.Write(self._insert_agreement, row, "a+", _PG_INSERT_A, args, a.id)
        await deferred.write(conn, write)

    async def get_agreement(
        self, conn: AsyncConnection, id: str, *, lock: bool = False
    ) -> AgreementRecord | None:
        query = _GET_A_LOCKED if lock else _GET_A
        row = (await self._run(conn, query, {"id": id})).first()
        return _agreement(row) if row else None

    async def list_agreements(self, conn: AsyncConnection) -> list[AgreementRecord]:
        query = sa.select(agreements).order_by(agreements.c.created_at)
        return [_agreement(r) for r in (await self._run(conn, query)).all()]

    async def spend(
        self, conn: AsyncConnection, id: str, *, uses: int = 1, epsilon: float = 0.0
    ) -> None:
        await self._run(
            conn,
            agreements.update()
            .where(agreements.c.id == id)
            .values(
                uses=agreements.c.uses + uses, epsilon_spent=agreements.c.epsilon_spent + epsilon
            ),
        )

    # outbox
    async def enqueue(
        self,
        conn: AsyncConnection,
        *,
        process_kind: str,
        process_id: str,
        message_type: str,
        url: str,
        audience: str,
        body: dict[str, Any],
        now: datetime,
    ) -> None:
        row = {
            "process_kind": process_kind,
            "process_id": process_id,
            "message_type": message_type,
            "url": url,
            "audience": audience,
            "body": _json(body),
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        args = tuple(row[c] for c in _O_COLUMNS)
        # Keyed by process: a process's messages must get ids in the order they were queued,
        # and sub-statements of one statement are not run in a set order.
        key = ("outbox", process_id)
        if self.on_leased is None or not deferred.holding(conn) or PID_PLACEHOLDER in url:
            conn.info.setdefault(_ENQUEUED, []).append(process_id)
            await deferred.write(conn, deferred.Write(_ENQUEUE, row, "o+", _PG_ENQUEUE, args, key))
            return
        # Sent by this replica right after the commit, unless an older message of the
        # process is still unsent (then claimed after it, as usual).

        def leased(rows: Sequence[Any]) -> None:
            [(id, is_leased)] = rows
            if not is_leased:
                conn.info.setdefault(_ENQUEUED, []).append(process_id)
                return
            item = OutboxItem(
                id=id,
                process_kind=process_kind,
                process_id=process_id,
                message_type=message_type,
                url=url,
                audience=audience,
                body=body,
                attempts=1,
            )
            conn.info.setdefault(_LEASED, []).append(item)

        write = deferred.Write(
            _ENQUEUE,
            row,
            "o+!",
            _pg_enqueue_leased,
            (*(row[c] for c in _O_LEASED), now + self.lease, now),
            key,
            on_rows=leased,
        )
        await deferred.write(conn, write)

    async def claim(self, *, now: datetime, lease_seconds: float, limit: int) -> list[OutboxItem]:
        """Claim due messages: at most one per process (the oldest unsent), each leased so a
        crashed sender's claim expires and another replica (or this one, restarted) retries.
        One statement (``UPDATE ... RETURNING`` over ``FOR UPDATE SKIP LOCKED``)."""
        params = {
            "now": now,
            "limit": limit,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        async with single_statement(self.engine) as conn:
            rows = sorted((await conn.execute(self._claim, params)).all(), key=lambda r: int(r.id))
        return [
            OutboxItem(
                id=r.id,
                process_kind=r.process_kind,
                process_id=r.process_id,
                message_type=r.message_type,
                url=r.url,
                audience=r.audience,
                body=_loads(r.body),
                attempts=r.attempts,
                counterparty_pid=r.counterparty_pid,
            )
            for r in rows
        ]

    async def mark_sent(self, conn: AsyncConnection | None, item_id: int, now: datetime) -> None:
        """Delivered: in ``conn``'s transaction, or (None) as one statement of its own that
        need not wait for the WAL flush (lost in a crash, the message is merely sent again)."""
        # The body is dropped once delivered: a start message carries a data plane token.
        params = {"_id": item_id, "sent_at": now}
        if conn is not None:
            await self._run(conn, _MARK_SENT, params)
            return
        if self._sent_marks is not None:
            await self._sent_marks.submit((item_id, now, None))
            return
        async with single_statement(self.engine) as own:
            await own.execute(self._mark_sent_alone, params)

    async def mark_sent_with_ack(
        self,
        item_id: int,
        now: datetime,
        *,
        negotiation_id: str,
        provider_pid: str,
        consumer_pid: str,
    ) -> bool:
        """Our initial negotiation message was answered with this ACK: record both pids
        (``record_negotiation_ack``, whose result this returns) and the sent mark. On
        PostgreSQL in one statement, shared with concurrent sent marks."""
        if self._sent_marks is None:
            known = await self.record_negotiation_ack(
                negotiation_id, provider_pid=provider_pid, consumer_pid=consumer_pid, now=now
            )
            await self.mark_sent(None, item_id, now)
            return known
        ack = _Ack(negotiation_id, provider_pid, consumer_pid)
        return await self._sent_marks.submit((item_id, now, ack))

    async def _mark_sent_many(
        self, items: Sequence[tuple[int, datetime, _Ack | None]]
    ) -> list[bool]:
        ids = [i for i, _, _ in items]
        sent = [at for _, at, _ in items]
        acks = [a for _, _, a in items]
        if not any(acks):
            async with single_statement(self.engine) as conn:
                await deferred.run(conn, _PG_MARK_SENT_MANY, (ids, sent), fetch=False)
            return [True] * len(items)
        args = (
            ids,
            sent,
            [a.negotiation_id if a else None for a in acks],
            [a.provider_pid if a else None for a in acks],
            [a.consumer_pid if a else None for a in acks],
        )
        try:
            async with single_statement(self.engine) as conn:
                rows = await deferred.run(conn, _PG_ACK_AND_MARK_SENT_MANY, args)
                updated = {row[0] for row in rows}
        except IntegrityError:
            # A peer answered with a providerPid another negotiation of ours with it has
            # (uq_negotiation_ppid): one by one, so that only its ACK is refused.
            results = []
            for _, at, ack in items:
                if ack is None:
                    results.append(True)
                else:
                    results.append(
                        await self.record_negotiation_ack(
                            ack.negotiation_id,
                            provider_pid=ack.provider_pid,
                            consumer_pid=ack.consumer_pid,
                            now=at,
                        )
                    )
            async with single_statement(self.engine) as conn:
                await deferred.run(conn, _PG_MARK_SENT_MANY, (ids, sent), fetch=False)
            return results
        return [a is None or a.negotiation_id in updated for a in acks]

    async def purge(self, *, before: datetime) -> int:
        """Forget delivered and failed messages older than ``before`` (the audit log keeps
        the history); returns how many rows went."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                outbox.delete().where(
                    sa.or_(outbox.c.sent_at < before, outbox.c.failed_at < before)
                )
            )
        return int(result.rowcount or 0)

    async def mark_retry(self, item_id: int, *, error: str, retry_at: datetime) -> None:
        async with single_statement(self.engine) as conn:
            await conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(next_attempt_at=retry_at, last_error=error[:2000])
            )

    async def mark_failed(
        self, conn: AsyncConnection, item_id: int, *, error: str, now: datetime
    ) -> None:
        await self._run(
            conn,
            outbox.update()
            .where(outbox.c.id == item_id)
            .values(failed_at=now, last_error=error[:2000]),
        )

    async def pending_messages(self, conn: AsyncConnection, process_id: str) -> int:
        query = sa.select(sa.func.count()).where(
            outbox.c.process_id == process_id,
            outbox.c.sent_at.is_(None),
            outbox.c.failed_at.is_(None),
        )
        return int((await self._run(conn, query)).scalar_one())


def _agreement(row: sa.Row[Any]) -> AgreementRecord:
    return AgreementRecord(
        id=row.id,
        negotiation_id=row.negotiation_id,
        role=Role(row.role),
        dataset_id=row.dataset_id,
        provider_did=row.provider_did,
        consumer_did=row.consumer_did,
        agreement=_loads(row.agreement),
        provider_signature=row.provider_signature,
        consumer_signature=row.consumer_signature,
        uses=row.uses,
        epsilon_spent=row.epsilon_spent,
        created_at=as_utc(row.created_at),
    )
