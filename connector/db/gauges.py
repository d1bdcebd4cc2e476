"""The store's state as gauges for `/metrics`, read on each scrape (a ``MetricSource``).

Four cheap queries in one read-only connection: negotiations and transfers grouped by role and
state, the outbox's pending messages (the loop's partial index covers them) and the audit
entries written but not yet chained. Counts and ages only. Every known role and state is
reported, zero when absent, so alerts and dashboards see a series before its first process.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import as_utc
from connector.db.tables import audit_pending, negotiations, outbox, transfers
from connector.dsp.states import NegotiationState, Role, TransferState
from connector.ports import Clock

_PENDING = sa.and_(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))


class StoreGauges:
    name = "store"

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine, self._clock = engine, clock

    async def collect(self) -> Iterable[Any]:
        async with self._engine.connect() as conn:
            by_state = {
                "negotiations": await _by_state(conn, negotiations),
                "transfers": await _by_state(conn, transfers),
            }
            out = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(_PENDING)
                )
            ).one()
            audit = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(audit_pending.c.recorded_at))
                )
            ).one()
            await conn.rollback()
        now = self._clock.now()
        families: list[Any] = []
        for kind, states in (("negotiations", NegotiationState), ("transfers", TransferState)):
            families.append(_state_family(kind, states, by_state[kind]))
        families += [
            _gauge(
                "phems_outbox_pending_messages",
                "Outbound DSP messages waiting to be sent (including retries).",
                out[0],
            ),
            _gauge(
                "phems_outbox_oldest_pending_seconds",
                "Age of the oldest outbound DSP message waiting to be sent; 0 when none waits.",
                _age(now, out[1]),
            ),
            _gauge(
                "phems_audit_pending_entries",
                "Audit entries recorded but not yet in the hash chain (the chainer's lag).",
                audit[0],
            ),
            _gauge(
                "phems_audit_oldest_pending_seconds",
                "Age of the oldest audit entry not yet chained; 0 when the chain is up to date.",
                _age(now, audit[1]),
            ),
        ]
        return families


async def _by_state(conn: Any, table: sa.Table) -> dict[tuple[str, str], int]:
    rows = await conn.execute(
        sa.select(table.c.role, table.c.state, sa.func.count()).group_by(
            table.c.role, table.c.state
        )
    )
    return {(role, state): count for role, state, count in rows}


def _state_family(
    kind: str, states: type[StrEnum], counts: dict[tuple[str, str], int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        f"phems_{kind}",
        f"{kind.capitalize()} in the store by role (provider or consumer) and DSP state.",
        labels=["role", "state"],
    )
    known = {(role.value, state.value) for role in Role for state in states}
    for role, state in sorted(known | set(counts)):
        family.add_metric([role, state], counts.get((role, state), 0))
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(now: datetime, oldest: datetime | None) -> float:
    # SQLite keeps no zone; the store writes UTC.
    return 0.0 if oldest is None else max(0.0, (now - as_utc(oldest)).total_seconds())
