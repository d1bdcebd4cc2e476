"""The ``jobs`` table: idempotent enqueue, leased claims, progress and outcomes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import as_utc
from connector.db.engine import single_statement
from connector.db.tables import jobs
from connector.jobs.model import Job, JobState


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        key=row.key,
        params=json.loads(row.params),
        state=JobState(row.state),
        stage=row.stage,
        percent=row.percent,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        node=row.node,
        owner=row.owner,
        lease_until=as_utc(row.lease_until) if row.lease_until else None,
        finished_at=as_utc(row.finished_at) if row.finished_at else None,
        result=json.loads(row.result) if row.result else None,
        error=row.error,
    )


class SqlJobStore:
    """Jobs in the connector's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def enqueue(
        self,
        *,
        kind: str,
        key: str,
        params: dict[str, Any],
        now: datetime,
        node: str | None = None,
        max_attempts: int = 3,
    ) -> Job:
        """The job with ``key``: a new one, or the existing one whatever its state (a finished
        job is not run again; use a new key, e.g. with the data version, for new work)."""
        existing = await self.by_key(key)
        if existing is not None:
            return existing
        values = {
            "id": uuid.uuid4().hex,
            "kind": kind,
            "key": key,
            "node": node,
            "params": json.dumps(params),
            "state": JobState.QUEUED.value,
            "stage": "queued",
            "percent": 0.0,
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": now,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(jobs.insert().values(**values))
        except IntegrityError:
            pass  # enqueued by another process at the same moment
        found = await self.by_key(key)
        assert found is not None
        return found

    async def get(self, id: str) -> Job | None:
        async with single_statement(self.engine) as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.id == id))).first()
        return _job(row) if row else None

    async def by_key(self, key: str) -> Job | None:
        async with single_statement(self.engine) as conn:
            row = (await conn.execute(sa.select(jobs).where(jobs.c.key == key))).first()
        return _job(row) if row else None

    async def recent(self, *, limit: int = 100, kind: str | None = None) -> list[Job]:
        query = sa.select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        async with single_statement(self.engine) as conn:
            return [_job(r) for r in (await conn.execute(query)).all()]

    async def counts(self) -> dict[str, int]:
        """Jobs by state (for metrics)."""
        query = sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
        async with single_statement(self.engine) as conn:
            return {str(s): int(n) for s, n in (await conn.execute(query)).all()}

    async def claim(
        self, *, owner: str, node: str, kinds: list[str], now: datetime, lease: timedelta
    ) -> Job | None:
        """Lease one due job this node may run: queued and due, or running under an expired
        lease (its runner died). One statement over ``FOR UPDATE SKIP LOCKED``."""
        due = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.kind.in_(kinds),
                sa.or_(jobs.c.node.is_(None), jobs.c.node == node),
                sa.or_(
                    sa.and_(jobs.c.state == JobState.QUEUED.value, jobs.c.run_after <= now),
                    sa.and_(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_until < now),
                ),
            )
            .order_by(jobs.c.run_after, jobs.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        statement = (
            jobs.update()
            .where(jobs.c.id.in_(due.scalar_subquery()))
            .values(
                state=JobState.RUNNING.value,
                owner=owner,
                lease_until=now + lease,
                attempts=jobs.c.attempts + 1,
                updated_at=now,
            )
            .returning(*jobs.c)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(statement)).first()
        return _job(row) if row else None

    async def progress(
        self, id: str, owner: str, *, stage: str, percent: float, now: datetime, lease: timedelta
    ) -> bool:
        """Record progress and extend the lease; False if the job is no longer ours (its
        lease expired and another runner took it)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == id,
                    jobs.c.owner == owner,
                    jobs.c.state == JobState.RUNNING.value,
                )
                .values(
                    stage=stage[:255],
                    percent=max(0.0, min(100.0, percent)),
                    lease_until=now + lease,
                    updated_at=now,
                )
            )
        return bool(result.rowcount)

    async def finish(self, id: str, owner: str, *, result: dict[str, Any], now: datetime) -> bool:
        async with self.engine.begin() as conn:
            done = await conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == id,
                    jobs.c.owner == owner,
                    jobs.c.state == JobState.RUNNING.value,
                )
                .values(
                    state=JobState.DONE.value,
                    stage="done",
                    percent=100.0,
                    result=json.dumps(result),
                    error=None,
                    lease_until=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
        return bool(done.rowcount)

    async def fail(
        self, id: str, owner: str, *, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """A failed attempt: queued again at ``retry_at``, or failed for good (None)."""
        values: dict[str, Any] = {"error": error[:2000], "lease_until": None, "updated_at": now}
        if retry_at is None:
            values |= {"state": JobState.FAILED.value, "stage": "failed", "finished_at": now}
        else:
            values |= {"state": JobState.QUEUED.value, "run_after": retry_at}
        async with self.engine.begin() as conn:
            await conn.execute(
                jobs.update().where(jobs.c.id == id, jobs.c.owner == owner).values(**values)
            )

    async def retry(self, id: str, *, now: datetime) -> Job | None:
        """Queue a failed job again (an operator's retry after fixing the cause)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == id, jobs.c.state == JobState.FAILED.value)
                .values(
                    state=JobState.QUEUED.value,
                    stage="queued",
                    percent=0.0,
                    attempts=0,
                    run_after=now,
                    finished_at=None,
                    updated_at=now,
                )
            )
        return await self.get(id)
