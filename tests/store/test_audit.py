"""Audit log contract: chained appends, verification finds edits and deletions, FHIR export."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.audit import AuditLog, to_fhir_audit_event
from connector.clock import FixedClock

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        await log.append(
            actor="did:web:consumer.example",
            event="negotiation.requested",
            negotiation_id=f"urn:uuid:n{i}",
            purpose="research",
            details={"i": i},
        )


async def test_chain_verifies(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 5)
    result = await log.verify()
    assert result.ok, result.problems
    assert result.entries == 5
    entries = [e async for e in log.entries()]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))


async def test_empty_log_verifies(engine: AsyncEngine) -> None:
    result = await AuditLog(engine, FixedClock(T0)).verify()
    assert result.ok and result.entries == 0


async def test_edited_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 4)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET purpose='marketing' WHERE seq=2"))
    result = await log.verify()
    assert not result.ok
    assert any("entry 2: content was changed" in p for p in result.problems)


async def test_deleted_middle_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 4)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq=3"))
    result = await log.verify()
    assert not result.ok
    assert any("entry 3 is missing" in p for p in result.problems)


async def test_deleted_newest_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 3)
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq=3"))
    result = await log.verify()
    assert not result.ok
    assert any("newest entries were deleted" in p for p in result.problems)


async def test_concurrent_appends_keep_one_chain(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await asyncio.gather(*(_fill(log, 5) for _ in range(4)))
    result = await log.verify()
    assert result.ok, result.problems
    assert result.entries == 20


async def test_fhir_export_is_valid_r4(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    entry = await log.append(
        actor="did:web:a", event="transfer.started", transfer_id="t1", agreement_id="a1"
    )
    resource = to_fhir_audit_event(entry, "did:web:provider")
    parsed = AuditEvent.model_validate(resource)
    assert parsed.agent[0].who.identifier.value == "did:web:a"
    assert {e.description for e in parsed.entity} == {"agreement", "transfer"}
