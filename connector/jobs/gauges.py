"""The job queue as gauges for `/metrics`, read on each scrape (a ``MetricSource``): jobs by
kind and state, and the age of the oldest one waiting to run. Counts and ages only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import as_utc
from connector.db.tables import jobs
from connector.jobs.model import JobState
from connector.ports import Clock


class JobGauges:
    name = "jobs"

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._engine, self._clock = engine, clock

    async def collect(self) -> Iterable[Any]:
        by_state = sa.select(jobs.c.kind, jobs.c.state, sa.func.count()).group_by(
            jobs.c.kind, jobs.c.state
        )
        oldest = sa.select(sa.func.min(jobs.c.run_after)).where(
            jobs.c.state == JobState.QUEUED.value
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(by_state)).all()
            waiting_since = (await conn.execute(oldest)).scalar()
        counts = GaugeMetricFamily(
            "phems_jobs", "Long jobs by kind and state.", labels=["kind", "state"]
        )
        kinds = sorted({str(k) for k, _, _ in rows})
        seen = {(str(k), str(s)): int(n) for k, s, n in rows}
        for kind in kinds:
            for state in JobState:
                counts.add_metric([kind, state.value], seen.get((kind, state.value), 0))
        age = GaugeMetricFamily(
            "phems_jobs_oldest_queued_seconds",
            "How long the oldest queued job has been due (0 when none waits).",
        )
        waited = 0.0
        if waiting_since is not None:
            waited = max((self._clock.now() - as_utc(waiting_since)).total_seconds(), 0.0)
        age.add_metric([], waited)
        return [counts, age]
