"""SharedReads: concurrent reads of one key after one mark are one read, and
a read begun before a caller's mark is never its answer."""

import asyncio

from queues.core.shared_reads import SharedReads


async def test_readers_after_one_mark_share_one_read() -> None:
    reads: SharedReads[str, int] = SharedReads()
    gate = asyncio.Event()
    calls = 0

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    since = reads.mark()
    waiting = [asyncio.ensure_future(reads.read("k", since, read)) for _ in range(100)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 100
    assert calls == 1


async def test_a_read_begun_before_the_mark_is_not_joined() -> None:
    reads: SharedReads[str, str] = SharedReads()
    stale_read = asyncio.Event()
    stale_gate = asyncio.Event()
    state = "before"

    async def read_stale() -> str:
        seen = state
        stale_read.set()
        await stale_gate.wait()
        return seen

    async def read_now() -> str:
        return state

    stale = asyncio.ensure_future(reads.read("k", reads.mark(), read_stale))
    await stale_read.wait()
    state = "after"  # a write the next caller was told of
    fresh = await reads.read("k", reads.mark(), read_now)
    stale_gate.set()
    assert (await stale, fresh) == ("before", "after")


async def test_a_caller_going_away_leaves_the_read_to_the_others() -> None:
    reads: SharedReads[str, int] = SharedReads()
    gate = asyncio.Event()

    async def read() -> int:
        await gate.wait()
        return 7

    since = reads.mark()
    first = asyncio.ensure_future(reads.read("k", since, read))
    second = asyncio.ensure_future(reads.read("k", since, read))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await second == 7
