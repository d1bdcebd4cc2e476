"""The store's gauges for /metrics on SQLite and PostgreSQL: processes by role and state
(zero for every known one), pending outbox messages and unchained audit entries with ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import FixedClock
from connector.db.gauges import StoreGauges
from connector.db.tables import audit_pending, negotiations, outbox, transfers
from connector.dsp.states import NegotiationState, TransferState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _samples(families: list[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(type("Fixed", (), {"collect": lambda self: families})())
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _process(table: Any, pid: str, role: str, state: str) -> dict[str, Any]:
    row = {
        "id": pid,
        "role": role,
        "state": state,
        "consumer_pid": pid,
        "counterparty_did": "did:web:peer.example",
        "document": "{}",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return {k: v for k, v in row.items() if k in table.c}


def _message(number: int, created: datetime, **marks: datetime) -> dict[str, Any]:
    # Every row names every column: an executemany takes its columns from the first row.
    return {
        "sent_at": None,
        "failed_at": None,
        "id": number,
        "process_kind": "negotiation",
        "process_id": f"n{number}",
        "message_type": "ContractAgreementMessage",
        "url": "https://peer.example/dsp",
        "audience": "did:web:peer.example",
        "body": "{}",
        "attempts": 0,
        "next_attempt_at": created,
        "created_at": created,
        **marks,
    }


async def test_an_empty_store_reports_zeros(engine: AsyncEngine) -> None:
    samples = _samples(list(await StoreGauges(engine, FixedClock(NOW)).collect()))
    for role in ("provider", "consumer"):
        for state in NegotiationState:
            assert samples[("phems_negotiations", (("role", role), ("state", state)))] == 0
        for state in TransferState:
            assert samples[("phems_transfers", (("role", role), ("state", state)))] == 0
    for name in (
        "phems_outbox_pending_messages",
        "phems_outbox_oldest_pending_seconds",
        "phems_audit_pending_entries",
        "phems_audit_oldest_pending_seconds",
    ):
        assert samples[(name, ())] == 0


async def test_counts_and_ages(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            negotiations.insert(),
            [
                _process(negotiations, "n1", "provider", "REQUESTED"),
                _process(negotiations, "n2", "provider", "REQUESTED"),
                _process(negotiations, "n3", "consumer", "FINALIZED"),
            ],
        )
        await conn.execute(transfers.insert(), [_process(transfers, "t1", "consumer", "STARTED")])
        await conn.execute(
            outbox.insert(),
            [
                _message(1, NOW - timedelta(seconds=90)),
                _message(2, NOW - timedelta(seconds=30)),
                _message(3, NOW - timedelta(hours=5), sent_at=NOW - timedelta(hours=5)),
                _message(4, NOW - timedelta(hours=6), failed_at=NOW - timedelta(hours=1)),
            ],
        )
        await conn.execute(
            audit_pending.insert(),
            [
                {"recorded_at": NOW - timedelta(seconds=s), "actor": "a", "event": "e"}
                | {"details": "{}"}
                for s in (7, 3)
            ],
        )
    samples = _samples(list(await StoreGauges(engine, FixedClock(NOW)).collect()))
    negotiation = lambda role, state: samples[  # noqa: E731
        ("phems_negotiations", (("role", role), ("state", state)))
    ]
    assert negotiation("provider", "REQUESTED") == 2
    assert negotiation("consumer", "FINALIZED") == 1
    assert negotiation("consumer", "REQUESTED") == 0
    assert samples[("phems_transfers", (("role", "consumer"), ("state", "STARTED")))] == 1
    assert samples[("phems_outbox_pending_messages", ())] == 2  # not the sent or failed ones
    assert samples[("phems_outbox_oldest_pending_seconds", ())] == pytest.approx(90)
    assert samples[("phems_audit_pending_entries", ())] == 2
    assert samples[("phems_audit_oldest_pending_seconds", ())] == pytest.approx(7)
