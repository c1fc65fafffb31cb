"""MemoryJobStore's cost per job does not grow with the jobs it holds.

The store serves the quote service (`--store memory`), where an operation that
scans every job makes a run of n jobs cost O(n^2). No wall-clock limit says so
here: a worker's round (claim, complete, next_due, stats, the dead letters'
list) is timed on a queue of 1,000 pending jobs and on one of 50,000, in the
same run, and compared. Indexed, the larger costs a log factor more; scanning,
fifty times more.
"""

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

from queues.core.jobs import JobState, NewJob
from queues.core.memory_store import MemoryJobStore

SMALL, LARGE = 1_000, 50_000
#: Generous: a log factor is under 2x; a scan of every job is 50x.
MAX_RATIO = 10.0
ROUNDS, CYCLES = 7, 20
DEAD = frozenset({JobState.FAILED})


async def filled(pending: int) -> MemoryJobStore:
    store = MemoryJobStore()
    for start in range(0, pending, 500):
        batch = [
            NewJob("q", {"n": n}, priority=n % 3, max_attempts=3)
            for n in range(start, min(start + 500, pending))
        ]
        await store.submit(batch, now=1.0)
    return store


async def seconds_per_cycle(store: MemoryJobStore, now: float) -> float:
    started = time.perf_counter()
    for _ in range(CYCLES):
        [claim] = await store.claim("q", "w1", limit=1, lease=30.0, now=now)
        await store.complete(claim, {"ok": True}, hold=False, now=now)
        await store.next_due("q")
        await store.stats("q")
        await store.list("q", states=DEAD, after=0, limit=100)
    return (time.perf_counter() - started) / CYCLES


@contextmanager
def collector_paused() -> Iterator[None]:
    # A full collection walks every object, however few the store touches.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_cycle_costs_about_the_same_with_50_times_the_jobs_pending() -> None:
    small, large = await filled(SMALL), await filled(LARGE)
    small_times: list[float] = []
    large_times: list[float] = []
    with collector_paused():
        # Alternated, so that a busy spell of the machine hits both alike; the
        # fastest round of each is the least disturbed.
        for round_ in range(ROUNDS):
            now = 10.0 + round_
            small_times.append(await seconds_per_cycle(small, now))
            large_times.append(await seconds_per_cycle(large, now))
    ratio = min(large_times) / min(small_times)
    assert ratio < MAX_RATIO, (
        f"a cycle with {LARGE:,} jobs pending took {ratio:.1f}x one with {SMALL:,}"
        f" ({min(large_times) * 1e6:.0f} µs vs {min(small_times) * 1e6:.0f} µs)"
    )
