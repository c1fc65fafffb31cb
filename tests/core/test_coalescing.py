"""Coalescing: calls made while a batch is written go together in the next."""

import asyncio

import pytest

from queues.core.coalescing import Coalescing


class Writer:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, batch: list[int]) -> list[int | Exception]:
        self.batches.append(batch)
        self.started.set()
        await self.gate.wait()
        return [ValueError(n) if n < 0 else n * 10 for n in batch]


async def test_calls_during_a_write_go_together_in_the_next_and_answer_alone() -> None:
    writer = Writer()
    coalescing = Coalescing(writer, most=2)
    first = asyncio.create_task(coalescing.call(1))
    await writer.started.wait()
    rest = [asyncio.create_task(coalescing.call(n)) for n in (2, -3, 4)]
    await asyncio.sleep(0)
    writer.gate.set()
    assert await first == 10
    answers = await asyncio.gather(*rest, return_exceptions=True)
    assert answers[0] == 20 and answers[2] == 40
    assert isinstance(answers[1], ValueError)
    assert writer.batches == [[1], [2, -3], [4]]


async def test_a_write_that_raises_fails_its_whole_batch_and_the_next_goes_on() -> None:
    calls = 0

    async def write(batch: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("down")
        return list(batch)

    coalescing = Coalescing(write)
    with pytest.raises(OSError, match="down"):
        await coalescing.call(1)
    assert await coalescing.call(2) == 2


async def test_a_caller_that_goes_away_leaves_its_item_to_the_batch() -> None:
    writer = Writer()
    coalescing = Coalescing(writer)
    first = asyncio.create_task(coalescing.call(1))
    await writer.started.wait()
    gone = asyncio.create_task(coalescing.call(2))
    await asyncio.sleep(0)
    gone.cancel()
    writer.gate.set()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await gone
    while len(writer.batches) < 2:
        writer.started.clear()
        await writer.started.wait()
    assert writer.batches[1] == [2]
