"""Append-only, hash-chained audit log.

Each entry's ``hash`` is SHA-256 over the RFC 8785 canonical JSON of its fields and the previous
entry's hash; ``audit_head`` holds the newest (seq, hash). ``verify`` recomputes the chain, so an
edited, inserted or deleted entry (including the newest) is detected. Appends lock the head row,
which serialises writers across replicas sharing one PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import rfc8785
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from connector.db.tables import audit_head, audit_log
from connector.ports import Clock

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
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
        return hashlib.sha256(rfc8785.dumps(body)).hexdigest()  # type: ignore[arg-type]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    problems: list[str]


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite returns naive datetimes; we only ever store UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class AuditLog:
    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

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
    ) -> AuditEntry:
        """Append one entry; inside ``conn``'s transaction when given (so it commits with the
        state change it records)."""
        if conn is not None:
            return await self._append(
                conn,
                actor,
                event,
                negotiation_id,
                agreement_id,
                transfer_id,
                purpose,
                details or {},
            )
        async with self._engine.begin() as own:
            return await self._append(
                own, actor, event, negotiation_id, agreement_id, transfer_id, purpose, details or {}
            )

    async def append_many(
        self, conn: AsyncConnection, entries: Sequence[Mapping[str, Any]]
    ) -> list[AuditEntry]:
        """Append several entries (each the keyword arguments of ``append`` without ``conn``)
        in ``conn``'s transaction, locking the head once. Callers that defer their entries to
        the end of a transaction hold the head lock, which serialises all writers, only for
        these three statements and the commit."""
        if not entries:
            return []
        head_query = sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        head = (await conn.execute(head_query.with_for_update())).one()
        seq, prev = head.seq, head.hash
        written: list[AuditEntry] = []
        for fields in entries:
            seq += 1
            entry = AuditEntry(
                seq=seq,
                recorded_at=self._clock.now().astimezone(UTC),
                actor=fields["actor"],
                event=fields["event"],
                negotiation_id=fields.get("negotiation_id"),
                agreement_id=fields.get("agreement_id"),
                transfer_id=fields.get("transfer_id"),
                purpose=fields.get("purpose"),
                details=json.loads(json.dumps(fields.get("details") or {}, default=str)),
                prev_hash=prev,
            )
            entry = AuditEntry(**{**entry.__dict__, "hash": entry.compute_hash()})
            written.append(entry)
            prev = entry.hash
        await conn.execute(
            audit_log.insert(),
            [
                {
                    "seq": e.seq,
                    "recorded_at": e.recorded_at,
                    "actor": e.actor,
                    "event": e.event,
                    "negotiation_id": e.negotiation_id,
                    "agreement_id": e.agreement_id,
                    "transfer_id": e.transfer_id,
                    "purpose": e.purpose,
                    "details": json.dumps(e.details, sort_keys=True),
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in written
            ],
        )
        await conn.execute(
            audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev)
        )
        return written

    async def _append(
        self,
        conn: AsyncConnection,
        actor: str,
        event: str,
        negotiation_id: str | None,
        agreement_id: str | None,
        transfer_id: str | None,
        purpose: str | None,
        details: dict[str, Any],
    ) -> AuditEntry:
        [entry] = await self.append_many(
            conn,
            [
                {
                    "actor": actor,
                    "event": event,
                    "negotiation_id": negotiation_id,
                    "agreement_id": agreement_id,
                    "transfer_id": transfer_id,
                    "purpose": purpose,
                    "details": details,
                }
            ],
        )
        return entry

    async def entries(self, batch: int = 1000) -> AsyncIterator[AuditEntry]:
        last = 0
        while True:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(audit_log)
                        .where(audit_log.c.seq > last)
                        .order_by(audit_log.c.seq)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return
            for row in rows:
                last = row.seq
                yield AuditEntry(
                    seq=row.seq,
                    recorded_at=row.recorded_at,
                    actor=row.actor,
                    event=row.event,
                    negotiation_id=row.negotiation_id,
                    agreement_id=row.agreement_id,
                    transfer_id=row.transfer_id,
                    purpose=row.purpose,
                    details=json.loads(row.details),
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                )

    async def verify(self) -> VerifyResult:
        problems: list[str] = []
        expected_seq, prev, count = 1, GENESIS, 0
        async for entry in self.entries():
            count += 1
            if entry.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next is {entry.seq})")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq}: chain broken (previous hash differs)")
            if entry.compute_hash() != entry.hash:
                problems.append(f"entry {entry.seq}: content was changed (hash mismatch)")
            expected_seq, prev = entry.seq + 1, entry.hash
        async with self._engine.connect() as conn:
            head = (await conn.execute(sa.select(audit_head))).first()
        if head is None:
            problems.append("audit head is missing")
        elif head.seq != expected_seq - 1 or head.hash != prev:
            problems.append(
                f"newest entries were deleted: head says entry {head.seq}, "
                f"log ends at {expected_seq - 1}"
            )
        return VerifyResult(ok=not problems, entries=count, problems=problems)


def to_fhir_audit_event(entry: AuditEntry, observer_did: str) -> dict[str, Any]:
    """FHIR R4 ``AuditEvent`` for one entry (for `phems-connector audit export`)."""
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
    if entities:
        event["entity"] = entities
    if entry.purpose:
        event["purposeOfEvent"] = [{"text": entry.purpose}]
    return event
