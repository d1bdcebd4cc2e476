"""GroupWriter: concurrent callers share writes, each gets its own result or error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from connector.db.batching import GroupWriter


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def write(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a statement in flight: others queue meanwhile
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot write {self.fail_on}")
        return [i * 10 for i in items]


async def test_alone_a_caller_is_written_at_once() -> None:
    rec = Recorder()
    writer = GroupWriter(rec.write)
    assert await writer.submit(1) == 10
    assert await writer.submit(2) == 20
    assert rec.batches == [[1], [2]]


async def test_callers_arriving_during_a_write_share_the_next_one() -> None:
    rec = Recorder()
    writer = GroupWriter(rec.write, max_batch=30)
    results = await asyncio.gather(*(writer.submit(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    # All 100 queued before the first write began: batches of at most 30, in arrival order.
    assert rec.batches == [list(range(s, min(s + 30, 100))) for s in range(0, 100, 30)]


async def test_a_failed_write_fails_its_callers_only() -> None:
    rec = Recorder(fail_on=5)
    writer = GroupWriter(rec.write)
    first = asyncio.create_task(writer.submit(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(writer.submit(i)) for i in range(1, 8)]  # one batch, with 5
    assert await first == 0
    for task in others:
        with pytest.raises(ValueError, match="cannot write 5"):
            await task
    assert await writer.submit(9) == 90  # the writer goes on


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    rec = Recorder()
    writer = GroupWriter(rec.write)
    tasks = [asyncio.create_task(writer.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 2] == [0, 10, 30, 40]


async def test_a_write_returning_the_wrong_number_of_results_is_an_error() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return []

    writer = GroupWriter(short)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await writer.submit(1)
