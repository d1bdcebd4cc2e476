"""Append-only, hash-chained audit log, chained asynchronously in batches.

Each entry's ``hash`` is SHA-256 over the RFC 8785 canonical JSON of its fields and the previous
entry's hash; ``audit_head`` holds the newest chained (seq, hash). ``verify`` recomputes the
chain, so an edited, inserted or deleted entry (including the newest) is detected.

Writing and chaining are separate, so audited transactions do not wait on one another:

- ``append`` / ``append_many`` only INSERT the entry into ``audit_pending``, in the caller's
  transaction: the entry commits, or rolls back, with the state change it records.
- ``chain_pending`` (run by the background ``run_chainer`` and by ``flush``) takes the head lock,
  moves a batch of pending entries into ``audit_log`` in id order with the next seqs and hashes,
  and moves the head, in one transaction. The head lock serialises chainers of replicas sharing
  one PostgreSQL; only they ever wait for it.

The chain is anchored outside the database by signed checkpoints of its head
(``connector.audit_anchor``), which ``verify`` checks too: without them, whoever can write the
database could cut the newest entries or rewrite the chain from an edited entry on.

The trade-off: an entry is durable when its business transaction commits, and tamper-evident
once chained (normally within half a second; at the latest at the next poll, or when the next
process starts and flushes). A row edited or deleted while still pending is not detected.
Entries are chained in ``audit_pending`` id order among those committed at chaining time, so
seq follows commit order only roughly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.audit_anchor import EXTENSION as CHECKPOINT_EXTENSION
from connector.audit_anchor import AuditAnchor, Checkpoint, check_chain
from connector.canonical import canonical_json
from connector.db import deferred
from connector.db.tables import audit_head, audit_log, audit_pending
from connector.errors import PhemsError
from connector.ports import Clock

GENESIS = "0" * 64
_ENTRY_COLUMNS = (
    "recorded_at",
    "actor",
    "event",
    "negotiation_id",
    "agreement_id",
    "transfer_id",
    "purpose",
    "details",
)

_CHAINED_COLUMNS = ("seq", *_ENTRY_COLUMNS, "prev_hash", "hash")
_PG_TYPES = {"seq": "bigint", "recorded_at": "timestamptz"}
# PostgreSQL: insert a chained batch from one array per column and move the head, together.
_PG_CHAIN = sa.text(
    "WITH head AS (UPDATE audit_head SET seq = :head_seq, hash = :head_hash WHERE id = 1) "
    f"INSERT INTO audit_log ({', '.join(_CHAINED_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {_PG_TYPES.get(c, 'text')}[])" for c in _CHAINED_COLUMNS)
    + ")"
)

_PENDING_INSERT = audit_pending.insert()  # built once: SQLAlchemy's construct costs per call

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    """One chained entry of ``audit_log``."""

    seq: int
    recorded_at: datetime
    actor: str
    event: str
    negotiation_id: str | None = None
    agreement_id: str | None = None
    transfer_id: str | None = None
    purpose: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def compute_hash(self) -> str:
        body = {
            "seq": self.seq,
            "recorded_at": _iso(self.recorded_at),
            "actor": self.actor,
            "event": self.event,
            "negotiation_id": self.negotiation_id,
            "agreement_id": self.agreement_id,
            "transfer_id": self.transfer_id,
            "purpose": self.purpose,
            "details": self.details,
            "prev_hash": self.prev_hash,
        }
        return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of ``AuditLog.verify``: ``problems`` in plain words, empty when ``ok``."""

    ok: bool
    entries: int
    problems: list[str]
    anchored: int = 0  # the newest entry a signed checkpoint vouches for


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite returns naive datetimes; we only ever store UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class AuditLog:
    """The audit log of one connector (see the module docstring for how entries get chained)."""

    BATCH = 1000
    # After a wake-up, so one chaining transaction takes many entries (chaining costs a head
    # lock and five round trips however few it takes); entries wait at most this much longer.
    # (0.1 s cost the provider about 5% of its CPU at 50 negotiations/s: bench/README.md.)
    GATHER_SECONDS = 0.5

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        anchor: AuditAnchor | None = None,
        checkpoint_seconds: float = 300.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._wake = asyncio.Event()
        self.anchor = anchor
        self.checkpoint_seconds = checkpoint_seconds
        self._checkpointed: tuple[int, datetime | None] = (-1, None)  # (seq, when)

    async def append(
        self,
        *,
        actor: str,
        event: str,
        negotiation_id: str | None = None,
        agreement_id: str | None = None,
        transfer_id: str | None = None,
        purpose: str | None = None,
        details: dict[str, Any] | None = None,
        conn: AsyncConnection | None = None,
    ) -> None:
        """Record one entry; inside ``conn``'s transaction when given (so it commits with the
        state change it records), else in a transaction of its own."""
        fields = {
            "actor": actor,
            "event": event,
            "negotiation_id": negotiation_id,
            "agreement_id": agreement_id,
            "transfer_id": transfer_id,
            "purpose": purpose,
            "details": details,
        }
        if conn is not None:
            await self.append_many(conn, [fields])
            return
        async with self._engine.begin() as own:
            await self.append_many(own, [fields])

    async def append_many(
        self, conn: AsyncConnection, entries: Sequence[Mapping[str, Any]]
    ) -> None:
        """Record several entries (each the keyword arguments of ``append`` without ``conn``)
        in ``conn``'s transaction with one INSERT. They are chained after the commit."""
        if not entries:
            return
        recorded_at = self._clock.now().astimezone(UTC)
        rows = [
            {
                "recorded_at": recorded_at,
                "actor": fields["actor"],
                "event": fields["event"],
                "negotiation_id": fields.get("negotiation_id"),
                "agreement_id": fields.get("agreement_id"),
                "transfer_id": fields.get("transfer_id"),
                "purpose": fields.get("purpose"),
                "details": json.dumps(fields.get("details") or {}, default=str, sort_keys=True),
            }
            for fields in entries
        ]
        # Held to the end of a store transaction (connector/db/deferred.py), else run now.
        args = tuple(row[c] for row in rows for c in _ENTRY_COLUMNS)
        write = deferred.Write(
            _PENDING_INSERT,
            rows,
            ("audit", len(rows)),
            deferred.insert_text("audit_pending", _ENTRY_COLUMNS, rows=len(rows)),
            args,
            key="audit",  # entries keep their order: a second INSERT waits for the first
        )
        await deferred.write(conn, write)
        # Before the commit, so the chainer may find nothing yet: it then catches these
        # entries at the next wake-up or poll.
        self._wake.set()

    async def chain_pending(self, limit: int = BATCH) -> int:
        """Chain up to ``limit`` pending entries in one transaction; return how many."""
        async with self._engine.begin() as conn:
            head_query = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            head = (await conn.execute(head_query.with_for_update())).one()
            # Holding the head lock, this statement sees every entry committed by now and none
            # that another chainer already took (its transaction committed before ours locked).
            batch = (
                sa.select(audit_pending.c.id).order_by(audit_pending.c.id).limit(limit)
            ).scalar_subquery()
            taken = (
                await conn.execute(
                    audit_pending.delete()
                    .where(audit_pending.c.id.in_(batch))
                    .returning(*audit_pending.c)
                )
            ).all()
            if not taken:
                return 0
            seq, prev = head.seq, head.hash
            chained: list[dict[str, Any]] = []
            for row in sorted(taken, key=lambda r: r.id):
                seq += 1
                entry = AuditEntry(
                    seq=seq,
                    recorded_at=row.recorded_at,
                    actor=row.actor,
                    event=row.event,
                    negotiation_id=row.negotiation_id,
                    agreement_id=row.agreement_id,
                    transfer_id=row.transfer_id,
                    purpose=row.purpose,
                    details=json.loads(row.details),
                    prev_hash=prev,
                )
                prev = entry.compute_hash()
                chained.append(
                    {
                        **{c: getattr(row, c) for c in _ENTRY_COLUMNS},
                        "seq": seq,
                        "prev_hash": entry.prev_hash,
                        "hash": prev,
                    }
                )
            if conn.dialect.name == "postgresql":
                # The whole batch and the head move in one statement (one bind per column).
                columns = {c: [e[c] for e in chained] for c in _CHAINED_COLUMNS}
                await conn.execute(_PG_CHAIN, {**columns, "head_seq": seq, "head_hash": prev})
            else:
                await conn.execute(audit_log.insert(), chained)
                await conn.execute(
                    audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev)
                )
            return len(chained)

    async def flush(self) -> int:
        """Chain everything pending now; return how many entries were chained."""
        total = 0
        while True:
            chained = await self.chain_pending()
            total += chained
            if chained < self.BATCH:
                return total

    async def run_chainer(self, poll_seconds: float = 5.0) -> None:
        """Chain pending entries until cancelled: woken by appends in this process, and every
        ``poll_seconds`` for entries of other replicas or of a process that crashed."""
        while True:
            self._wake.clear()  # an append from now on wakes the next round
            try:
                await self.flush()
                await self.checkpoint(due_only=True)
            except Exception:
                log.exception("audit chaining failed; retrying in %s s", poll_seconds)
                await asyncio.sleep(poll_seconds)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            except TimeoutError:
                continue
            await asyncio.sleep(self.GATHER_SECONDS)

    async def checkpoint(self, *, due_only: bool = False) -> bool:
        """Sign and keep the head outside the database (``connector.audit_anchor``) if it
        moved since the last checkpoint (and, ``due_only``, ``checkpoint_seconds`` passed)."""
        if self.anchor is None:
            return False
        now = self._clock.now()
        last_seq, last_at = self._checkpointed
        if due_only and last_at is not None:
            if (now - last_at).total_seconds() < self.checkpoint_seconds:
                return False
        async with self._engine.connect() as conn:
            head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash))).first()
        if head is None or head.seq == 0 or head.seq == last_seq:
            return False
        await asyncio.to_thread(self.anchor.write, head.seq, head.hash, now)
        self._checkpointed = (head.seq, now)
        return True

    async def _rows(self, batch: int = 1000) -> AsyncIterator[Any]:
        """The rows of ``audit_log`` in seq order, the timestamp as stored (text on SQLite:
        a row edited by hand must not stop the reading)."""
        columns = [c for c in audit_log.c if c.name != "recorded_at"]
        recorded = sa.type_coerce(audit_log.c.recorded_at, sa.String).label("recorded_at")
        last = 0
        while True:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(*columns, recorded)
                        .where(audit_log.c.seq > last)
                        .order_by(audit_log.c.seq)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return
            for row in rows:
                last = row.seq
                yield row

    async def entries(self, batch: int = 1000) -> AsyncIterator[AuditEntry]:
        """The chained entries in seq order (call ``flush`` first to include pending ones);
        ``DamagedEntry`` naming the first row that cannot be read."""
        async for row in self._rows(batch):
            yield _entry(row)

    async def verify(self, extra_checkpoints: Sequence[Path] = ()) -> VerifyResult:
        """Chain what is pending, then recompute the whole chain and compare it with the head
        and with every signed checkpoint (ours, and those in ``extra_checkpoints``)."""
        await self.flush()
        problems: list[str] = []
        expected_seq, prev, count = 1, GENESIS, 0
        hashes: dict[int, str] = {}
        async for row in self._rows():
            count += 1
            if row.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next is {row.seq})")
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: chain broken (previous hash differs)")
            try:
                entry = _entry(row)
            except DamagedEntry as exc:
                problems.append(exc.detail)
            else:
                if entry.compute_hash() != entry.hash:
                    problems.append(f"entry {row.seq}: content was changed (hash mismatch)")
            expected_seq, prev = row.seq + 1, row.hash
            hashes[row.seq] = row.hash
        async with self._engine.connect() as conn:
            head = (await conn.execute(sa.select(audit_head))).first()
        if head is None:
            problems.append("audit head is missing")
        elif head.seq != expected_seq - 1 or head.hash != prev:
            problems.append(
                f"newest entries were deleted: head says entry {head.seq}, "
                f"log ends at {expected_seq - 1}"
            )
        anchored = 0
        if self.anchor is not None:
            found = [c for p in (None, *extra_checkpoints) for c in self.anchor.read(p)]
            problems += check_chain(found, hashes, expected_seq - 1)
            anchored = max((c.seq for c in found if isinstance(c, Checkpoint)), default=0)
        return VerifyResult(ok=not problems, entries=count, problems=problems, anchored=anchored)


class DamagedEntry(PhemsError):
    """An ``audit_log`` row that cannot be read (edited outside the connector)."""

    code = "audit-damaged"
    title = "Audit log damaged"


def _entry(row: Any) -> AuditEntry:
    try:
        recorded_at = row.recorded_at
        if not isinstance(recorded_at, datetime):
            recorded_at = datetime.fromisoformat(str(recorded_at))
    except ValueError:
        raise DamagedEntry(
            f"entry {row.seq}: unreadable timestamp {str(row.recorded_at)[:40]!r}"
        ) from None
    try:
        details = json.loads(row.details)
        if not isinstance(details, dict):
            raise ValueError("not an object")
    except (ValueError, TypeError) as exc:
        raise DamagedEntry(f"entry {row.seq}: unreadable details ({exc})") from None
    return AuditEntry(
        seq=row.seq,
        recorded_at=recorded_at,
        actor=row.actor,
        event=row.event,
        negotiation_id=row.negotiation_id,
        agreement_id=row.agreement_id,
        transfer_id=row.transfer_id,
        purpose=row.purpose,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def to_fhir_audit_event(
    entry: AuditEntry, observer_did: str, checkpoint: str | None = None
) -> dict[str, Any]:
    """FHIR R4 ``AuditEvent`` for one entry (for `phems-connector audit export`), with the
    signed checkpoint that vouches for it, if one does (``connector.audit_anchor``)."""
    entities: list[dict[str, Any]] = []
    for kind, value in (
        ("negotiation", entry.negotiation_id),
        ("agreement", entry.agreement_id),
        ("transfer", entry.transfer_id),
    ):
        if value:
            entities.append(
                {
                    "what": {
                        "identifier": {
                            "system": f"https://w3id.org/phems/ns/{kind}",
                            "value": value,
                        }
                    },
                    "description": kind,
                }
            )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{entry.seq}",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "https://w3id.org/phems/ns/audit-event", "code": entry.event}],
        "action": "E",
        "recorded": _iso(entry.recorded_at),
        "outcome": "0",
        "agent": [
            {
                "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": entry.actor}},
                "requestor": True,
            }
        ],
        "source": {
            "observer": {"identifier": {"system": "urn:ietf:rfc:3986", "value": observer_did}}
        },
        "extension": [
            {"url": "https://w3id.org/phems/ns/audit-hash", "valueString": entry.hash},
            {"url": "https://w3id.org/phems/ns/audit-prev-hash", "valueString": entry.prev_hash},
        ],
    }
    if checkpoint is not None:
        event["extension"].append({"url": CHECKPOINT_EXTENSION, "valueString": checkpoint})
    if entities:
        event["entity"] = entities
    if entry.purpose:
        event["purposeOfEvent"] = [{"text": entry.purpose}]
    return event
