"""Audit log contract: appends land in their transaction, the chainer links them into one chain,
verification finds edits and deletions, FHIR export."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.audit import AuditLog, to_fhir_audit_event
from connector.clock import FixedClock
from connector.db.engine import create_engine

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await log.append(
            actor="did:web:consumer.example",
            event="negotiation.requested",
            negotiation_id=f"urn:uuid:n{i}",
            purpose="research",
            details={"i": i},
        )


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def _wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _second_engine(engine: AsyncEngine) -> AsyncEngine:
    return create_engine(engine.url.render_as_string(hide_password=False))


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


async def test_appends_wait_in_pending_until_flushed_in_id_order(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 3)
    async with engine.begin() as conn:
        await log.append_many(
            conn, [{"actor": "a", "event": "e", "details": {"i": i}} for i in (3, 4)]
        )
    assert await _count(engine, "audit_log") == 0
    assert await _count(engine, "audit_pending") == 5

    assert await log.chain_pending(limit=2) == 2
    assert await log.flush() == 3
    assert await _count(engine, "audit_pending") == 0
    await _fill(log, 2, start=5)
    assert await log.flush() == 2

    entries = [e async for e in log.entries()]
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.details["i"] for e in entries] == [0, 1, 2, 3, 4, 5, 6]
    assert all(e.recorded_at.replace(tzinfo=UTC) == T0 for e in entries)
    assert (await log.verify()).ok


async def test_entries_of_a_rolled_back_transaction_never_appear(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 1)
    async with engine.connect() as conn:
        await conn.begin()
        await log.append(actor="a", event="rolled.back", conn=conn)
        await log.append_many(conn, [{"actor": "a", "event": "rolled.back"}])
        await conn.rollback()
    await _fill(log, 1, start=1)
    result = await log.verify()
    assert result.ok and result.entries == 2
    assert [e.event async for e in log.entries()] == ["negotiation.requested"] * 2


async def test_edited_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 4)
    await log.flush()
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET purpose='marketing' WHERE seq=2"))
    result = await log.verify()
    assert not result.ok
    assert any("entry 2: content was changed" in p for p in result.problems)


async def test_inserted_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 3)
    await log.flush()
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET seq=seq+1 WHERE seq=3"))
        await conn.execute(
            sa.text(
                "INSERT INTO audit_log SELECT 3, recorded_at, actor, 'forged', negotiation_id,"
                " agreement_id, transfer_id, purpose, details, prev_hash, hash"
                " FROM audit_log WHERE seq=2"
            )
        )
    result = await log.verify()
    assert not result.ok
    assert any("entry 3: content was changed" in p for p in result.problems)


async def test_deleted_middle_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 4)
    await log.flush()
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq=3"))
    result = await log.verify()
    assert not result.ok
    assert any("entry 3 is missing" in p for p in result.problems)


async def test_deleted_newest_entry_detected(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 3)
    await log.flush()
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


async def test_chainer_chains_new_entries_without_a_flush(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    chainer = asyncio.create_task(log.run_chainer(poll_seconds=60))  # woken by the appends
    try:
        await _fill(log, 3)
        await _wait_for(lambda: _has(engine, "audit_log", 3))
        await _fill(log, 2, start=3)
        await _wait_for(lambda: _has(engine, "audit_log", 5))
    finally:
        chainer.cancel()
        await asyncio.gather(chainer, return_exceptions=True)
    assert await _count(engine, "audit_pending") == 0
    assert (await log.verify()).ok


async def test_chainer_takes_over_entries_a_crashed_process_left(engine: AsyncEngine) -> None:
    other = _second_engine(engine)
    try:
        await _fill(AuditLog(other, FixedClock(T0)), 2)
    finally:
        await other.dispose()  # never chained, as if that process had crashed
    log = AuditLog(engine, FixedClock(T0))
    chainer = asyncio.create_task(log.run_chainer(poll_seconds=0.05))
    try:
        await _wait_for(lambda: _has(engine, "audit_log", 2))  # at start
        await _fill(AuditLog(engine, FixedClock(T0)), 1, start=2)  # wakes a different Event
        await _wait_for(lambda: _has(engine, "audit_log", 3))  # by polling
    finally:
        chainer.cancel()
        await asyncio.gather(chainer, return_exceptions=True)
    assert [e.details["i"] async for e in log.entries()] == [0, 1, 2]


async def test_two_instances_on_two_engines_build_one_chain(engine: AsyncEngine) -> None:
    other = _second_engine(engine)
    logs = [AuditLog(engine, FixedClock(T0)), AuditLog(other, FixedClock(T0))]
    chainers = [asyncio.create_task(log.run_chainer(poll_seconds=0.2)) for log in logs]

    async def writer(log: AuditLog, eng: AsyncEngine, name: str) -> None:
        for i in range(25):  # 25 transactions of 2 entries, 4 writers a side: 200 a side
            async with eng.begin() as conn:
                await log.append_many(
                    conn, [{"actor": name, "event": "e", "details": {"i": i}}] * 2
                )

    try:
        await asyncio.gather(
            *(
                writer(log, eng, f"{side}-{w}")
                for side, (log, eng) in enumerate(zip(logs, [engine, other], strict=True))
                for w in range(4)
            )
        )
        await _wait_for(lambda: _has(engine, "audit_log", 400))
    finally:
        for chainer in chainers:
            chainer.cancel()
        await asyncio.gather(*chainers, return_exceptions=True)
        await other.dispose()
    result = await logs[0].verify()
    assert result.ok, result.problems
    assert result.entries == 400
    assert [e.seq async for e in logs[0].entries()] == list(range(1, 401))


async def test_fhir_export_is_valid_r4(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await log.append(
        actor="did:web:a", event="transfer.started", transfer_id="t1", agreement_id="a1"
    )
    await log.flush()
    [entry] = [e async for e in log.entries()]
    resource = to_fhir_audit_event(entry, "did:web:provider")
    parsed = AuditEvent.model_validate(resource)
    assert parsed.agent[0].who.identifier.value == "did:web:a"
    assert {e.description for e in parsed.entity} == {"agreement", "transfer"}


async def _has(engine: AsyncEngine, table: str, n: int) -> bool:
    return await _count(engine, table) >= n
