"""The outbox in SQL (``connector.exchange.ports.Outbox``).

Items are claimed with one ``UPDATE ... RETURNING`` over ``FOR UPDATE SKIP LOCKED`` (replicas
share the work), at most one per process (its oldest unsent). On PostgreSQL, while a sender is
attached (``on_leased``), an item queued in a transaction is leased to this replica at the
insert, unless an older item of its process is unsent, and handed to ``on_leased`` after the
commit: sent with no claim. Sent marks outside a transaction share one statement under load
(``GroupWriter``), with the ACK of an initial negotiation message when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from connector.db import deferred
from connector.db.batching import GroupWriter
from connector.db.database import Database, run, state
from connector.db.documents import dumps, loads
from connector.db.engine import no_flush_wait, single_statement
from connector.db.negotiation_store import SqlNegotiationStore
from connector.db.tables import negotiations, outbox, transfers
from connector.dsp.outbox import STEP, OutboxItem
from connector.dsp.states import Role
from connector.dsp.urls import PID_PLACEHOLDER

_b = sa.bindparam
_COLUMNS = (
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
_ENQUEUE = outbox.insert()
_PG_ENQUEUE = deferred.insert_text("outbox", _COLUMNS)
_MARK_SENT = (
    outbox.update().where(outbox.c.id == _b("_id")).values(sent_at=_b("sent_at"), body="{}")
)


def _pg_mark_sent(o: int) -> str:
    return f"UPDATE outbox SET sent_at = ${o + 1}, body = '{{}}' WHERE id = ${o + 2}"


def _pg_enqueue_leased(o: int) -> str:
    """The outbox insert of an item its replica sends itself at once after the commit:
    leased at the insert (its first attempt, due again when the lease ends) unless the
    process has an older unsent item, which must go first (then due at once, for the claim,
    as usual). The step the transaction completes (the last parameter; -1 for none) does not
    count: its sent mark is in the same statement, whose parts do not see each other's rows.
    Returns the id and whether it was leased. The caller holds the process's row lock (or
    creates the process): no other transaction queues for it meanwhile. Parameters:
    ``_LEASED`` and those."""
    kind, pid, type_, url, audience, body, lease_until, now, done = (
        f"${o + i}" for i in range(1, 10)
    )
    return (
        f"INSERT INTO outbox ({', '.join(_COLUMNS)}) "
        f"SELECT {kind}::varchar, {pid}::varchar, {type_}::varchar, {url}::varchar, "
        f"{audience}::varchar, {body}::text, CASE WHEN g.free THEN 1 ELSE 0 END, "
        f"CASE WHEN g.free THEN {lease_until}::timestamptz ELSE {now}::timestamptz END, "
        f"{now}::timestamptz FROM (SELECT NOT EXISTS (SELECT FROM outbox o "
        f"WHERE o.process_id = {pid}::varchar AND o.sent_at IS NULL "
        f"AND o.failed_at IS NULL AND o.id <> {done}::bigint)) AS g (free) "
        "RETURNING id, attempts = 1"
    )


_LEASED = ("process_kind", "process_id", "message_type", "url", "audience", "body")

# PostgreSQL: the sent marks of concurrent deliveries as one statement (see GroupWriter),
# committed without waiting for the WAL flush (see mark_sent).
_PG_MARK_SENT_MANY = (
    "UPDATE outbox SET sent_at = t.s, body = '{}' "
    "FROM unnest($1::bigint[], $2::timestamptz[]) AS t(i, s) "
    "WHERE outbox.id = t.i AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"
)

# The same with ACKs: the negotiations' pids from the counterparty's ACK to our initial message
# and the message's sent mark, together (as negotiation_store.ACK does for one); returns the
# negotiations updated. Both are lost together in a database crash, if at all: the message is
# sent again and the counterparty answers the repeat with the same ACK.
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

# Notes kept in a transaction's state (connector.db.database.state).
_ENQUEUED = "outbox enqueued"  # process ids whose items it queued (to be claimed)
_LEASED_ITEMS = "outbox leased"  # items it queued leased to this replica (sent at once)
_STEP_DONE = "outbox step done"  # the id of the step it completes


@dataclass(frozen=True)
class _Ack:
    negotiation_id: str
    provider_pid: str
    consumer_pid: str


def _claim_statement(dialect: str) -> sa.Update:
    """Lease up to ``limit`` due items, at most one per process (its oldest unsent)."""
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
    """The counterparty's pid of the item's process (NULL until its ACK is recorded), for
    a URL with the ``{pid}`` placeholder: read with the claim, not in a transaction of its
    own before each send."""

    def of(table: sa.Table) -> sa.ScalarSelect[Any]:
        pid = sa.case(
            (table.c.role == Role.CONSUMER.value, table.c.provider_pid),
            else_=table.c.consumer_pid,
        )
        return sa.select(pid).where(table.c.id == outbox.c.process_id).scalar_subquery()

    return sa.case((outbox.c.process_kind == "negotiation", of(negotiations)), else_=of(transfers))


class SqlOutbox:
    def __init__(self, db: Database, negotiations: SqlNegotiationStore) -> None:
        self.db = db
        self._negotiations = negotiations
        self._claim = _claim_statement(db.dialect)
        self._mark_sent_alone = _MARK_SENT.where(no_flush_wait(db.dialect))
        self._sent_marks: GroupWriter[tuple[int, datetime, _Ack | None], bool] | None = (
            GroupWriter(self._mark_sent_many) if db.postgresql else None
        )
        self.on_enqueued: Callable[[list[str]], None] | None = None
        self.on_leased: Callable[[list[OutboxItem]], None] | None = None
        self.lease = timedelta(seconds=15)

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
            "body": dumps(body),
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        args = tuple(row[c] for c in _COLUMNS)
        # Keyed by process: a process's items must get ids in the order they were queued,
        # and sub-statements of one statement are not run in a set order.
        key = ("outbox", process_id)
        tx = state(conn)
        self._after_commit(conn)
        if self.on_leased is None or not deferred.holding(conn) or PID_PLACEHOLDER in url:
            tx.values.setdefault(_ENQUEUED, []).append(process_id)
            await deferred.write(conn, deferred.Write(_ENQUEUE, row, "o+", _PG_ENQUEUE, args, key))
            return
        # Sent by this replica right after the commit, unless an older item of the process
        # is still unsent (then claimed after it, as usual).

        def leased(rows: Sequence[Any]) -> None:
            [(id, is_leased)] = rows
            if not is_leased:
                tx.values.setdefault(_ENQUEUED, []).append(process_id)
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
            tx.values.setdefault(_LEASED_ITEMS, []).append(item)

        done = tx.values.get(_STEP_DONE, -1)
        write = deferred.Write(
            _ENQUEUE,
            row,
            "o+!",
            _pg_enqueue_leased,
            (*(row[c] for c in _LEASED), now + self.lease, now, done),
            key,
            on_rows=leased,
        )
        await deferred.write(conn, write)

    async def enqueue_step(
        self,
        conn: AsyncConnection,
        *,
        process_kind: str,
        process_id: str,
        facts: dict[str, Any],
        now: datetime,
    ) -> None:
        await self.enqueue(
            conn,
            process_kind=process_kind,
            process_id=process_id,
            message_type=STEP,
            url="",
            audience="",
            body=facts,
            now=now,
        )

    async def complete_step(self, conn: AsyncConnection, item_id: int, now: datetime) -> None:
        state(conn).values[_STEP_DONE] = item_id
        await self.mark_sent(conn, item_id, now)

    def _after_commit(self, conn: AsyncConnection) -> None:
        tx = state(conn)

        def committed() -> None:
            leased: list[OutboxItem] = tx.values.get(_LEASED_ITEMS, [])
            enqueued: list[str] = tx.values.get(_ENQUEUED, [])
            # Send the items leased to us, wake the sender for the others.
            if leased and self.on_leased is not None:
                self.on_leased(leased)
            if enqueued and self.on_enqueued is not None:
                self.on_enqueued(enqueued)

        self.db.after_commit(conn, "outbox", committed)

    async def claim(self, *, now: datetime, lease_seconds: float, limit: int) -> list[OutboxItem]:
        params = {
            "now": now,
            "limit": limit,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        async with single_statement(self.db.engine) as conn:
            rows = sorted((await conn.execute(self._claim, params)).all(), key=lambda r: int(r.id))
        return [
            OutboxItem(
                id=r.id,
                process_kind=r.process_kind,
                process_id=r.process_id,
                message_type=r.message_type,
                url=r.url,
                audience=r.audience,
                body=loads(r.body),
                attempts=r.attempts,
                counterparty_pid=r.counterparty_pid,
            )
            for r in rows
        ]

    async def mark_sent(self, conn: AsyncConnection | None, item_id: int, now: datetime) -> None:
        # The body is dropped once delivered: a start message carries a data plane token.
        params = {"_id": item_id, "sent_at": now}
        if conn is not None:
            write = deferred.Write(
                _MARK_SENT, params, "o=", _pg_mark_sent, (now, item_id), ("outbox sent", item_id)
            )
            await deferred.write(conn, write)
            return
        if self._sent_marks is not None:
            await self._sent_marks.submit((item_id, now, None))
            return
        async with single_statement(self.db.engine) as own:
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
        """On PostgreSQL in one statement, shared with concurrent sent marks."""
        if self._sent_marks is None:
            known = await self._negotiations.record_ack(
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
            async with single_statement(self.db.engine) as conn:
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
            async with single_statement(self.db.engine) as conn:
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
                        await self._negotiations.record_ack(
                            ack.negotiation_id,
                            provider_pid=ack.provider_pid,
                            consumer_pid=ack.consumer_pid,
                            now=at,
                        )
                    )
            async with single_statement(self.db.engine) as conn:
                await deferred.run(conn, _PG_MARK_SENT_MANY, (ids, sent), fetch=False)
            return results
        return [a is None or a.negotiation_id in updated for a in acks]

    async def purge(self, *, before: datetime) -> int:
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                outbox.delete().where(
                    sa.or_(outbox.c.sent_at < before, outbox.c.failed_at < before)
                )
            )
        return int(result.rowcount or 0)

    async def mark_retry(self, item_id: int, *, error: str, retry_at: datetime) -> None:
        async with single_statement(self.db.engine) as conn:
            await conn.execute(
                outbox.update()
                .where(outbox.c.id == item_id)
                .values(next_attempt_at=retry_at, last_error=error[:2000])
            )

    async def mark_failed(
        self, conn: AsyncConnection, item_id: int, *, error: str, now: datetime
    ) -> None:
        await run(
            conn,
            outbox.update()
            .where(outbox.c.id == item_id)
            .values(failed_at=now, last_error=error[:2000]),
        )

    async def pending(self, conn: AsyncConnection, process_id: str) -> int:
        query = sa.select(sa.func.count()).where(
            outbox.c.process_id == process_id,
            outbox.c.sent_at.is_(None),
            outbox.c.failed_at.is_(None),
        )
        return int((await run(conn, query)).scalar_one())
