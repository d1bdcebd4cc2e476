"""Durable jobs: idempotent enqueue, leased claims, progress from a worker process, retries,
and a job whose process is killed with SIGKILL resumed by the next runner and finished once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from connector.clock import FixedClock, SystemClock
from connector.errors import BadRequestError
from connector.jobs import Job, JobContext, JobRunner, JobState, SqlJobStore
from tests.jobs import work

REPO = Path(__file__).resolve().parents[2]


async def test_enqueue_is_idempotent_by_key(engine: AsyncEngine) -> None:
    store = SqlJobStore(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = await store.enqueue(kind="k", key="k:1", params={"a": 1}, now=now)
    again = await store.enqueue(kind="k", key="k:1", params={"a": 2}, now=now)
    assert again.id == first.id and again.params == {"a": 1}
    assert first.state is JobState.QUEUED and first.percent == 0.0


async def test_a_job_runs_in_the_pool_with_progress(engine: AsyncEngine, tmp_path: Path) -> None:
    runner = JobRunner(SqlJobStore(engine), SystemClock(), work_dir=tmp_path, lease_seconds=0.6)
    seen: list[tuple[str, float]] = []

    async def handler(job: Job, ctx: JobContext) -> dict[str, Any]:
        steps = await ctx.run_cpu(work.count_up, int(job.params["steps"]))
        row = await runner.store.get(job.id)
        assert row is not None
        seen.append((row.stage, row.percent))
        return {"steps": steps}

    runner.register("count", handler)
    try:
        job = await runner.enqueue("count", "count:1", {"steps": 12})
        await runner.drain()
        done = await runner.store.get(job.id)
    finally:
        await runner.aclose()
    assert done is not None and done.state is JobState.DONE
    assert done.result == {"steps": 12} and done.percent == 100.0 and done.attempts == 1
    # The worker's progress reached the row while it ran (the lease is renewed each 0.2 s).
    assert seen and seen[0][0].startswith("step ")
    assert not list(tmp_path.glob("*.progress"))


async def test_failures_retry_with_backoff_then_fail(engine: AsyncEngine, tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    runner = JobRunner(SqlJobStore(engine), clock, work_dir=tmp_path)
    calls: list[int] = []

    async def flaky(job: Job, ctx: JobContext) -> dict[str, Any]:
        calls.append(job.attempts)
        await ctx.run_cpu(work.fail)
        return {}

    runner.register("flaky", flaky)
    try:
        job = await runner.enqueue("flaky", "flaky:1", {})
        await runner.drain()
        after_one = await runner.store.get(job.id)
        assert after_one is not None and after_one.state is JobState.QUEUED
        assert after_one.error == "RuntimeError: the work failed"
        await runner.drain()
        assert calls == [1]  # not due yet: backing off
        for _ in range(2):
            clock.advance(3600)
            await runner.drain()
        failed = await runner.store.get(job.id)
    finally:
        await runner.aclose()
    assert calls == [1, 2, 3]
    assert failed is not None and failed.state is JobState.FAILED and failed.finished_at


async def test_a_refusal_of_ours_fails_at_once(engine: AsyncEngine, tmp_path: Path) -> None:
    runner = JobRunner(SqlJobStore(engine), SystemClock(), work_dir=tmp_path)

    async def refuse(job: Job, ctx: JobContext) -> dict[str, Any]:
        raise BadRequestError("the dataset's scope names an unknown group")

    runner.register("refuse", refuse)
    job = await runner.enqueue("refuse", "refuse:1", {})
    await runner.drain()
    failed = await runner.store.get(job.id)
    assert failed is not None and failed.state is JobState.FAILED and failed.attempts == 1
    assert failed.error == "the dataset's scope names an unknown group"


async def test_as_many_jobs_run_at_once_as_the_settings_give_workers(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """PHEMS_JOB_WORKERS=2: a long job (a synthesizer fit) does not hold up the next one (a
    dataset's tables): the long one here waits for the short one to finish."""
    from connector.composition import build_services
    from connector.settings import Settings

    services = await build_services(Settings(data_dir=tmp_path / "d", job_workers=2))
    try:
        assert services.jobs.concurrency == services.jobs.workers == 2
    finally:
        await services.aclose()
    runner = JobRunner(
        SqlJobStore(engine), SystemClock(), work_dir=tmp_path, workers=2, concurrency=2
    )
    short_done = asyncio.Event()

    async def long(job: Job, ctx: JobContext) -> dict[str, Any]:
        await short_done.wait()  # with one job at a time, this would never end
        return {}

    async def short(job: Job, ctx: JobContext) -> dict[str, Any]:
        short_done.set()
        return {}

    runner.register("long", long)
    runner.register("short", short)
    try:
        first = await runner.enqueue("long", "long:1", {})
        second = await runner.enqueue("short", "short:1", {})
        await asyncio.wait_for(runner.drain(), timeout=30)
        states = [(await runner.store.get(j.id)).state for j in (first, second)]  # type: ignore[union-attr]
    finally:
        await runner.aclose()
    assert states == [JobState.DONE, JobState.DONE]


async def test_local_jobs_stay_on_their_node(engine: AsyncEngine, tmp_path: Path) -> None:
    store = SqlJobStore(engine)
    here = JobRunner(store, SystemClock(), work_dir=tmp_path, node="node-a")
    there = JobRunner(store, SystemClock(), work_dir=tmp_path, node="node-b")

    async def noop(job: Job, ctx: JobContext) -> dict[str, Any]:
        return {"node": "a" if ctx.runner is here else "b"}

    here.register("local", noop)
    there.register("local", noop)
    job = await here.enqueue("local", "local:1", {}, local=True)
    await there.drain()
    assert (await store.get(job.id)).state is JobState.QUEUED  # type: ignore[union-attr]
    await here.drain()
    assert (await store.get(job.id)).result == {"node": "a"}  # type: ignore[union-attr]


SCRIPT = """
import asyncio, sys
from pathlib import Path
from connector.clock import SystemClock
from connector.db.engine import create_engine
from connector.jobs import JobRunner, SqlJobStore
from tests.jobs.test_runner import sleeper

async def main() -> None:
    engine = create_engine(sys.argv[1])
    runner = JobRunner(SqlJobStore(engine), SystemClock(), work_dir=Path(sys.argv[2]),
                       node="node-x", lease_seconds=1.0)
    runner.register("sleep", sleeper(sys.argv[3], 60.0))
    await runner.run()

asyncio.run(main())
"""


def sleeper(log: str, seconds: float) -> Any:
    async def handler(job: Job, ctx: JobContext) -> dict[str, Any]:
        await ctx.run_cpu(work.note_and_sleep, log, seconds)
        return {"log": log}

    return handler


async def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_a_job_killed_with_sigkill_resumes_and_finishes_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    store = SqlJobStore(engine)
    log = tmp_path / "work.log"
    job = await store.enqueue(
        kind="sleep", key="sleep:1", params={}, now=datetime.now(UTC), node="node-x"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, url, str(tmp_path / "a"), str(log)],
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:

        async def started() -> bool:
            return log.exists() and "start" in log.read_text()

        await _until(started, 60)
        running = await store.get(job.id)
        assert running is not None and running.state is JobState.RUNNING
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its pool worker, mid-work
        proc.wait(10)
    assert log.read_text() == "start\n"
    runner = JobRunner(store, SystemClock(), work_dir=tmp_path / "b", node="node-x")
    runner.register("sleep", sleeper(str(log), 0.1))
    try:

        async def lease_expired() -> bool:
            return bool(await runner.run_due())

        await _until(lease_expired, 10)
        await runner.drain()
    finally:
        await runner.aclose()
    done = await store.get(job.id)
    assert done is not None and done.state is JobState.DONE and done.attempts == 2
    assert log.read_text() == "start\nstart\nend\n"  # run again from the start, finished once
    assert done.lease_until is None and (done.finished_at or datetime.min) > running.created_at


@pytest.mark.parametrize("lease", [timedelta(seconds=30)])
async def test_progress_of_a_job_taken_over_is_refused(
    engine: AsyncEngine, lease: timedelta
) -> None:
    store = SqlJobStore(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    job = await store.enqueue(kind="k", key="k:2", params={}, now=now)
    claimed = await store.claim(owner="a", node="n", kinds=["k"], now=now, lease=lease)
    assert claimed is not None and claimed.id == job.id
    later = now + lease * 2
    taken = await store.claim(owner="b", node="n", kinds=["k"], now=later, lease=lease)
    assert taken is not None and taken.owner == "b"
    assert not await store.progress(job.id, "a", stage="x", percent=5, now=later, lease=lease)
    assert not await store.finish(job.id, "a", result={}, now=later)
    assert await store.finish(job.id, "b", result={"ok": True}, now=later)
