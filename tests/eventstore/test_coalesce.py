"""The coalescer: calls made while a batch is in flight ride the next batch together,
and each caller gets its own result or the batch's error."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventstore.coalesce import Coalescer


class Recorder:
    """A `run` that doubles each item, one loop turn per batch, remembering batch sizes."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(0.001)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * item for item in items]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=200), st.integers(1, 64))
def test_every_caller_gets_its_own_result_in_bounded_batches(items: list[int], cap: int) -> None:
    recorder = Recorder()

    async def main() -> list[int]:
        coalescer = Coalescer(recorder.run, cap, "test")
        return await asyncio.gather(*[coalescer.submit(item) for item in items])

    assert asyncio.run(main()) == [2 * item for item in items]
    assert [i for batch in recorder.batches for i in batch] == items  # each sent once, in order
    assert all(len(batch) <= cap for batch in recorder.batches)
    assert len(recorder.batches) == -(-len(items) // cap)  # all queued at once: full batches


async def test_an_error_reaches_only_the_callers_of_its_batch() -> None:
    recorder = Recorder(fail_on=3)
    coalescer = Coalescer(recorder.run, 4, "test")
    results = await asyncio.gather(
        *[coalescer.submit(item) for item in range(8)], return_exceptions=True
    )
    assert [type(r).__name__ for r in results[:4]] == ["ValueError"] * 4
    assert results[4:] == [8, 10, 12, 14]  # the next batch went on


async def test_a_caller_cancelled_before_sending_is_dropped() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.run, 1, "test")
    first = asyncio.ensure_future(coalescer.submit(1))
    second = asyncio.ensure_future(coalescer.submit(2))
    third = asyncio.ensure_future(coalescer.submit(3))
    await asyncio.sleep(0)  # all three queued; the first batch is in flight
    second.cancel()
    assert await first == 2
    assert await third == 6
    with pytest.raises(asyncio.CancelledError):
        await second
    assert recorder.batches == [[1], [3]]
