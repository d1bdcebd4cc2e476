"""Signed checkpoints anchor the audit chain outside the database (issue 18, finding 6): an
insider who cuts the newest entries and moves the head back, or edits an entry and recomputes
every hash after it, fools the chain but not the checkpoints. Damaged rows are named."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.audit import AuditEntry, AuditLog, to_fhir_audit_event
from connector.audit_anchor import AuditAnchor
from connector.clock import FixedClock
from tests.identity.conftest import new_keys
from tests.store.test_audit import T0, _fill

DID = "did:web:hospital.example"


def _anchored(engine: AsyncEngine, tmp_path: Path) -> AuditLog:
    anchor = AuditAnchor(tmp_path / "audit-checkpoints.jsonl", DID, new_keys())
    return AuditLog(engine, FixedClock(T0), anchor=anchor)


async def _rewrite_from(engine: AsyncEngine, seq: int, details: dict[str, int]) -> None:
    """What an insider with write access can do: edit one entry and recompute the chain."""
    async with engine.begin() as conn:
        rows = (await conn.execute(sa.text("SELECT * FROM audit_log ORDER BY seq"))).all()
        prev = rows[seq - 2].hash if seq > 1 else "0" * 64
        for row in rows[seq - 1 :]:
            fields = {k: getattr(row, k) for k in AuditEntry.__dataclass_fields__}
            if isinstance(row.recorded_at, str):  # SQLite through a text query
                fields["recorded_at"] = datetime.fromisoformat(row.recorded_at)
            if row.seq == seq:
                fields["details"] = details
            else:
                fields["details"] = json.loads(row.details)
            fields["prev_hash"] = prev
            entry = AuditEntry(**fields)
            prev = entry.compute_hash()
            await conn.execute(
                sa.text(
                    "UPDATE audit_log SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s"
                ),
                {"d": json.dumps(entry.details), "p": entry.prev_hash, "h": prev, "s": row.seq},
            )
        await conn.execute(sa.text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


async def test_cutting_the_newest_entries_is_caught_by_a_checkpoint(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    log = _anchored(engine, tmp_path)
    await _fill(log, 5)
    await log.flush()
    assert await log.checkpoint()
    async with engine.begin() as conn:
        cut = (await conn.execute(sa.text("SELECT hash FROM audit_log WHERE seq = 3"))).one()
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq > 3"))
        await conn.execute(
            sa.text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": cut.hash}
        )
    assert (await AuditLog(engine, FixedClock(T0)).verify()).ok  # the chain alone is fooled
    result = await log.verify()
    assert not result.ok
    assert any("vouches for entry 5, the log ends at 3" in p for p in result.problems)


async def test_rewriting_the_chain_is_caught_by_a_checkpoint(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    log = _anchored(engine, tmp_path)
    await _fill(log, 5)
    await log.flush()
    await log.checkpoint()
    await _rewrite_from(engine, 2, {"i": 99})
    assert (await AuditLog(engine, FixedClock(T0)).verify()).ok  # the chain alone is fooled
    result = await log.verify()
    assert result.problems == [
        f"entry 5 differs from the checkpoint of {T0.isoformat()}: the log was rewritten at "
        "or before it"
    ]


async def test_checkpoints_follow_the_head_and_are_owner_only(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    log = _anchored(engine, tmp_path)
    assert not await log.checkpoint()  # nothing to anchor
    await _fill(log, 2)
    await log.flush()
    assert await log.checkpoint()
    assert not await log.checkpoint()  # the head did not move
    await _fill(log, 1)
    await log.flush()
    assert not await log.checkpoint(due_only=True)  # not due yet
    assert await log.checkpoint()
    path = tmp_path / "audit-checkpoints.jsonl"
    assert len(path.read_text().splitlines()) == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    result = await log.verify()
    assert result.ok and result.anchored == 3


async def test_a_forged_or_edited_checkpoint_is_named(engine: AsyncEngine, tmp_path: Path) -> None:
    log = _anchored(engine, tmp_path)
    await _fill(log, 2)
    await log.flush()
    await log.checkpoint()
    path = tmp_path / "audit-checkpoints.jsonl"
    other = AuditAnchor(tmp_path / "other.jsonl", DID, new_keys())
    other.write(1, "0" * 64, T0)
    path.write_text(path.read_text() + (tmp_path / "other.jsonl").read_text())
    result = await log.verify()
    assert result.problems == [
        "checkpoint (audit-checkpoints.jsonl line 2): signature not valid with our key "
        + result.problems[0].split("our key ", 1)[1]
    ]


async def test_an_export_carries_the_checkpoints(engine: AsyncEngine, tmp_path: Path) -> None:
    log = _anchored(engine, tmp_path)
    await _fill(log, 3)
    await log.flush()
    token = log.anchor.write(3, (await _head(engine))[1], T0)  # type: ignore[union-attr]
    export = tmp_path / "export.ndjson"
    lines = [
        json.dumps(to_fhir_audit_event(e, DID, token if e.seq == 3 else None))
        async for e in log.entries()
    ]
    export.write_text("\n".join(lines) + "\n")
    (tmp_path / "audit-checkpoints.jsonl").unlink()  # the insider removes the file too
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 3"))
        h = (await conn.execute(sa.text("SELECT hash FROM audit_log WHERE seq = 2"))).one()
        await conn.execute(sa.text("UPDATE audit_head SET seq=2, hash=:h WHERE id=1"), {"h": h[0]})
    assert (await log.verify()).ok
    result = await log.verify([export])
    assert any("vouches for entry 3" in p for p in result.problems)


async def _head(engine: AsyncEngine) -> tuple[int, str]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT seq, hash FROM audit_head"))).one()
    return int(row.seq), str(row.hash)


async def test_damaged_rows_are_named_not_a_traceback(engine: AsyncEngine) -> None:
    log = AuditLog(engine, FixedClock(T0))
    await _fill(log, 3)
    await log.flush()
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET details = '{not json' WHERE seq = 2"))
    result = await log.verify()
    assert not result.ok
    assert any(p.startswith("entry 2: unreadable details") for p in result.problems)


async def test_a_damaged_timestamp_is_named(tmp_path: Path) -> None:
    """SQLite keeps timestamps as text, which a hand edit can break (PostgreSQL types them)."""
    from connector.db.engine import create_engine, migrate

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        await migrate(engine)
        log = AuditLog(engine, FixedClock(T0))
        await _fill(log, 3)
        await log.flush()
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE audit_log SET recorded_at = 'yesterday' WHERE seq = 3")
            )
        result = await log.verify()
        assert result.problems == ["entry 3: unreadable timestamp 'yesterday'"]
    finally:
        await engine.dispose()
