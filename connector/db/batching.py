"""Group commit: many callers' small writes as one statement.

Under load, every DSP request writes its token's jti and every delivered message its sent mark,
each one tiny statement of its own. ``GroupWriter`` lets concurrent callers share one statement:
the first caller starts a write at once (no added latency when idle); callers arriving while it
runs wait together and go in the next one. Each caller gets its own result, or the exception
of the statement that carried its item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupWriter(Generic[T, R]):
    """Feeds ``write`` batches of at most ``max_batch`` items; ``write`` returns one result per
    item, in order."""

    def __init__(
        self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running is None:
            self._running = asyncio.create_task(self._drain(), name="group-writer")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    results = await self._write([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(
                            f"group write returned {len(results)} results for {len(batch)} items"
                        )
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # a caller may have been cancelled meanwhile
                        future.set_result(result)
        finally:
            self._running = None
            # Cancelled with items still queued: their callers must not wait forever.
            for _, future in self._queue:
                if not future.done():
                    future.set_exception(RuntimeError("group writer stopped"))
            self._queue.clear()
