"""The loop that claims and runs jobs, and the context a handler works in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from connector.errors import PhemsError
from connector.files import private_dir
from connector.jobs.model import Job
from connector.jobs.progress import Progress
from connector.jobs.store import SqlJobStore
from connector.ports import Clock

log = logging.getLogger(__name__)
T = TypeVar("T")

JobHandler = Callable[[Job, "JobContext"], Awaitable[dict[str, Any]]]


def node_name() -> str:
    """This replica's name: jobs that write its data directory are pinned to it."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


class LostLease(Exception):
    """Another runner took the job over (our lease expired): stop without recording."""


class JobContext:
    """What a running handler can do: report progress, run CPU-heavy work in the pool."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        self.stage = "running"
        self.percent = 0.0

    async def progress(self, stage: str, percent: float) -> None:
        self.stage, self.percent = stage, percent
        ok = await self.runner.store.progress(
            self.job.id,
            self.runner.owner,
            stage=stage,
            percent=percent,
            now=self.runner.clock.now(),
            lease=self.runner.lease,
        )
        if not ok:
            raise LostLease(self.job.id)

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(progress, *args)`` in the process pool; its ``progress(stage, percent)`` calls
        reach the job's row, and the lease is renewed while it runs."""
        path = self.runner.work_dir / f"{self.job.id}.progress"
        progress = Progress(path)
        future = asyncio.wrap_future(self.runner.pool().submit(fn, progress, *args))
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=self.runner.lease_seconds / 3)
                if done:
                    return future.result()
                seen = progress.read()
                if seen is not None:
                    await self.progress(*seen)
                else:
                    await self.progress(self.stage, self.percent)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


class JobRunner:
    """Claims due jobs of the kinds it has handlers for and runs them, ``concurrency`` at a
    time. Each process has one; several replicas share the table."""

    def __init__(
        self,
        store: SqlJobStore,
        clock: Clock,
        *,
        work_dir: Path,
        node: str | None = None,
        concurrency: int = 1,
        workers: int = 1,
        poll_seconds: float = 2.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.handlers: dict[str, JobHandler] = {}
        self.node = node or node_name()
        self.owner = f"{self.node}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.work_dir = work_dir
        self.concurrency = concurrency
        self.workers = workers
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self._pool: ProcessPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._done: dict[str, asyncio.Event] = {}

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def register(self, kind: str, handler: JobHandler) -> None:
        self.handlers[kind] = handler

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            private_dir(self.work_dir)
            # spawn: a worker must not inherit the event loop, sockets or database connections.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def wake(self) -> None:
        self._wake.set()

    async def enqueue(
        self, kind: str, key: str, params: dict[str, Any], *, local: bool = False
    ) -> Job:
        """Enqueue (idempotently by ``key``) and wake the loop. ``local``: only this node may
        run it (it writes this replica's data directory)."""
        job = await self.store.enqueue(
            kind=kind,
            key=key,
            params=params,
            now=self.clock.now(),
            node=self.node if local else None,
        )
        self.wake()
        return job

    async def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job once finished, or as it is after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = await self.store.get(job_id)
            if job is None or job.state.finished:
                return job
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return job
            event = self._done.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(left, self.poll_seconds))

    async def run(self) -> None:
        """The loop: until cancelled."""
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job loop: claiming failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def run_due(self) -> int:
        """Claim and start due jobs while there is room; the number started."""
        started = 0
        while len(self._running) < self.concurrency and self.handlers:
            job = await self.store.claim(
                owner=self.owner,
                node=self.node,
                kinds=sorted(self.handlers),
                now=self.clock.now(),
                lease=self.lease,
            )
            if job is None:
                break
            task = asyncio.create_task(self._execute(job), name=f"job {job.kind} {job.id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1
        return started

    async def drain(self) -> None:
        """Run due jobs until none is left (the CLI and tests)."""
        while await self.run_due() or self._running:
            if self._running:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)

    async def _execute(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        context = JobContext(self, job)
        try:
            result = await handler(job, context)
        except LostLease:
            log.warning("job %s (%s): lease lost to another runner; dropped", job.id, job.kind)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._record_failure(job, exc)
            await self._fail(job, exc)
        else:
            await self.store.finish(job.id, self.owner, result=result, now=self.clock.now())
            log.info("job %s (%s) done", job.id, job.kind)
        self.wake()
        event = self._done.pop(job.id, None)
        if event is not None:
            event.set()

    def _record_failure(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, PhemsError):
            log.warning("job %s (%s) failed: %s", job.id, job.kind, exc)
        else:
            log.error("job %s (%s) failed", job.id, job.kind, exc_info=exc)

    async def _fail(self, job: Job, exc: Exception) -> None:
        now = self.clock.now()
        retry = None
        if job.attempts < job.max_attempts and not isinstance(exc, PhemsError):
            retry = now + timedelta(seconds=5 * 2 ** (job.attempts - 1))
        error = str(exc) if isinstance(exc, PhemsError) else f"{type(exc).__name__}: {exc}"
        await self.store.fail(job.id, self.owner, error=error, now=now, retry_at=retry)

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(BaseException):
                await task
        if self._pool is not None:
            # A worker busy with a job's work would outlive us (the pool only stops idle
            # ones): stop it; the job's lease runs out and the next runner starts it again.
            workers = list(getattr(self._pool, "_processes", {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.terminate()
            for worker in workers:
                await asyncio.to_thread(worker.join, 5)
            self._pool = None
