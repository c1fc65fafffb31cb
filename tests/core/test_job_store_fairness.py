"""The JobStore contract's fairness half, on every backend: fairness keys in
turn (weighted), aging, a cap per key, scheduled jobs, the busiest keys."""

import asyncio
import itertools
import sqlite3
from contextlib import closing
from dataclasses import replace

from queues.core.fairness import NO_POLICY, ClaimPolicy
from queues.core.job_store import JobStore
from queues.core.jobs import JobState, NewJob
from queues.core.memory_store import MemoryJobStore
from queues.core.postgres_store import PostgresJobStore
from queues.core.rate_limits import RateLimit
from queues.core.sqlite_store import SqliteJobStore

LEASE = 30.0
LOW, NORMAL, HIGH, URGENT = 1, 2, 3, 4
AGING = ClaimPolicy(aging_interval=10.0, top_priority=URGENT)


def job(name: str, key: str = "", priority: int = NORMAL, **changes: object) -> NewJob:
    new = NewJob("q", {"name": name}, priority, 3, fairness_key=key)
    return replace(new, **changes)  # type: ignore[arg-type]


async def claimed(
    store: JobStore, limit: int, now: float = 100.0, policy: ClaimPolicy = NO_POLICY
) -> list[str]:
    claims = await store.claim("q", "w", limit=limit, lease=LEASE, now=now, policy=policy)
    return [claim.job.payload["name"] for claim in claims]


async def drain(store: JobStore, now: float = 100.0, policy: ClaimPolicy = NO_POLICY) -> list[str]:
    """Every job's name, claimed one at a time as one worker does."""
    order: list[str] = []
    while names := await claimed(store, 1, now, policy):
        order += names
    return order


async def test_one_keys_burst_and_anothers_few_are_served_in_turn(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(20)], now=1.0)
    await job_store.submit([job(f"b{n}", "B") for n in range(3)], now=2.0)
    order = await drain(job_store)
    assert order[:6] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert order[6:] == [f"a{n}" for n in range(3, 20)]


async def test_a_key_arriving_late_starts_at_the_clock_not_behind_the_backlog(
    job_store: JobStore,
) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(10)], now=1.0)
    assert await claimed(job_store, 4) == ["a0", "a1", "a2", "a3"]
    await job_store.submit([job("b0", "B"), job("b1", "B")], now=2.0)
    # B's first is ranked at the clock (a3's rank): it goes next, then A and B alternate.
    assert await drain(job_store) == ["b0", "a4", "b1", "a5", "a6", "a7", "a8", "a9"]


async def test_an_idle_key_saves_up_no_credit(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(5)], now=1.0)
    assert len(await drain(job_store)) == 5
    # B had none of those turns, and is owed none: its work starts at the
    # clock (a4's rank), one turn ahead of A's next, and then they alternate.
    await job_store.submit([job(f"b{n}", "B") for n in range(3)], now=2.0)
    await job_store.submit([job(f"a{n}", "A") for n in range(5, 8)], now=3.0)
    assert await drain(job_store) == ["b0", "b1", "a5", "b2", "a6", "a7"]


async def test_a_key_of_weight_two_has_two_turns_to_the_others_one(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A", weight=2.0) for n in range(6)], now=1.0)
    await job_store.submit([job(f"b{n}", "B") for n in range(3)], now=1.0)
    assert await drain(job_store) == ["a0", "b0", "a1", "a2", "b1", "a3", "a4", "b2", "a5"]


async def test_priority_comes_before_the_turns(job_store: JobStore) -> None:
    await job_store.submit([job("a-normal", "A"), job("a-high", "A", HIGH)], now=1.0)
    await job_store.submit([job("b-normal", "B"), job("b-high", "B", HIGH)], now=1.0)
    assert await drain(job_store) == ["a-high", "b-high", "a-normal", "b-normal"]


async def test_without_aging_low_waits_for_every_higher_job(job_store: JobStore) -> None:
    await job_store.submit([job("old-low", priority=LOW)], now=1.0)
    await job_store.submit([job(f"high{n}", priority=HIGH) for n in range(3)], now=90.0)
    assert (await drain(job_store, now=100.0))[-1] == "old-low"


async def test_a_job_ages_one_priority_per_interval_waited(job_store: JobStore) -> None:
    # At 100, old-low has waited 99 s: nine intervals, so it is served as URGENT
    # (the top), ahead of HIGH submitted a moment ago. mid-low has waited 15 s:
    # one interval, NORMAL, behind HIGH and ahead of fresh NORMAL by FIFO.
    await job_store.submit([job("old-low", priority=LOW)], now=1.0)
    await job_store.submit([job("mid-low", priority=LOW)], now=85.0)
    await job_store.submit([job("normal", priority=NORMAL)], now=99.0)
    await job_store.submit([job("high", priority=HIGH)], now=99.5)
    assert await drain(job_store, policy=AGING) == ["old-low", "high", "mid-low", "normal"]


async def test_aging_stops_at_the_top_priority(job_store: JobStore) -> None:
    await job_store.submit([job("urgent", priority=URGENT)], now=50.0)
    await job_store.submit([job("old-low", priority=LOW)], now=-1000.0)
    await job_store.submit([job("older-normal", priority=NORMAL)], now=-2000.0)
    # All URGENT now, none beyond: those aging raised go first, the lowest
    # stated priority first, however long each waited; then URGENT itself.
    assert await drain(job_store, policy=AGING) == ["old-low", "older-normal", "urgent"]


async def test_a_job_raised_by_aging_goes_before_those_submitted_at_its_level(
    job_store: JobStore,
) -> None:
    # The HIGH ones are ranked first but due only at 99, so they have not aged.
    highs = [job(f"high{n}", priority=HIGH, run_at=99.0) for n in range(3)]
    await job_store.submit(highs, now=1.0)
    await job_store.submit([job("low", priority=LOW)], now=80.0)
    # At 100 LOW has waited two intervals: HIGH, and ahead of those ranked before it.
    assert await drain(job_store, policy=AGING) == ["low", "high0", "high1", "high2"]


async def test_a_key_at_its_cap_is_passed_over_and_others_go_on(job_store: JobStore) -> None:
    capped = ClaimPolicy(max_per_key=2)
    await job_store.submit([job(f"a{n}", "A") for n in range(10)], now=1.0)
    await job_store.submit([job(f"b{n}", "B") for n in range(2)], now=1.0)
    await job_store.submit([job(f"c{n}", "C") for n in range(3)], now=1.0)
    assert sorted(await claimed(job_store, 10, policy=capped)) == [
        "a0", "a1", "b0", "b1", "c0", "c1",
    ]  # fmt: skip
    # Every key is at its cap: a claim takes nothing until one finishes.
    assert await claimed(job_store, 10, policy=capped) == []


async def test_a_finished_job_frees_its_keys_place_under_the_cap(job_store: JobStore) -> None:
    capped = ClaimPolicy(max_per_key=1)
    await job_store.submit([job("a0", "A"), job("a1", "A"), job("b0", "B")], now=1.0)
    first = await job_store.claim("q", "w", limit=5, lease=LEASE, now=100.0, policy=capped)
    assert sorted(c.job.payload["name"] for c in first) == ["a0", "b0"]
    a0 = next(c for c in first if c.job.payload["name"] == "a0")
    await job_store.complete(a0, {"ok": True}, hold=False, now=101.0)
    assert await claimed(job_store, 5, policy=capped) == ["a1"]


async def test_concurrent_claims_never_exceed_the_cap(job_store: JobStore) -> None:
    capped = ClaimPolicy(max_per_key=3)
    await job_store.submit([job(f"a{n}", "A") for n in range(30)], now=1.0)
    batches = await asyncio.gather(*(claimed(job_store, 2, policy=capped) for _ in range(8)))
    assert sum(len(batch) for batch in batches) == 3


async def test_a_scheduled_job_waits_for_its_time_and_says_when(job_store: JobStore) -> None:
    [scheduled] = await job_store.submit([job("later", run_at=50.0)], now=1.0)
    [due] = await job_store.submit([job("now")], now=1.0)
    assert scheduled.job.scheduled_for == 50.0 and due.job.scheduled_for is None
    assert scheduled.job.state is JobState.AVAILABLE
    assert await job_store.next_due("q") == 50.0
    assert await claimed(job_store, 5, now=49.9) == ["now"]
    assert await claimed(job_store, 5, now=50.0) == ["later"]
    assert (await job_store.get(scheduled.job.id)).scheduled_for == 50.0


async def test_a_scheduled_job_ages_from_its_time_not_its_submission(job_store: JobStore) -> None:
    await job_store.submit([job("scheduled-low", priority=LOW, run_at=95.0)], now=1.0)
    await job_store.submit([job("normal")], now=99.0)
    # Due 5 s ago, under one interval: still LOW, behind NORMAL.
    assert await drain(job_store, policy=AGING) == ["normal", "scheduled-low"]


async def test_a_scheduled_job_can_be_cancelled_before_its_time(job_store: JobStore) -> None:
    [scheduled] = await job_store.submit([job("later", run_at=50.0)], now=1.0)
    cancelled = await job_store.cancel(scheduled.job.id, now=2.0)
    assert cancelled.state is JobState.CANCELLED
    assert await claimed(job_store, 5, now=60.0) == []


async def test_stats_name_the_busiest_keys(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(5)], now=1.0)
    await job_store.submit([job(f"b{n}", "B") for n in range(2)], now=1.0)
    await job_store.submit([job(f"k{n}", f"key-{n:02}") for n in range(12)], now=1.0)
    await claimed(job_store, 1)  # a0: no longer pending
    counts = await job_store.stats("q")
    assert counts.busiest_keys[:2] == (("A", 4), ("B", 2))
    assert counts.busiest_keys[2:] == tuple((f"key-{n:02}", 1) for n in range(8))


async def claimed_over(
    store: JobStore, seconds: float, step: float, start: float = 100.0
) -> list[float]:
    """When the claims made every step seconds for seconds took jobs, one
    entry per job."""
    times = []
    now = start
    while now < start + seconds:
        times += [now] * len(await claimed(store, 10, now))
        now = round(now + step, 6)
    return times


async def test_a_rate_limit_holds_its_rate_after_the_burst(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(200)], now=1.0)
    await job_store.set_rate_limit("q", "A", RateLimit(per_second=20.0, burst=5), now=100.0)
    times = await claimed_over(job_store, seconds=3.0, step=0.01)
    assert times[:5] == [100.0] * 5  # the burst
    # Then 20 a second: 60 in the three seconds, within 10 %.
    assert 54 <= len(times) - 5 <= 66, len(times)
    assert all(b - a >= 0.05 - 1e-6 for a, b in itertools.pairwise(times[5:]))


async def test_a_limited_key_waits_and_others_go_on(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(5)], now=1.0)
    await job_store.submit([job(f"b{n}", "B") for n in range(5)], now=1.0)
    await job_store.set_rate_limit("q", "A", RateLimit(per_second=1.0, burst=1), now=100.0)
    assert await claimed(job_store, 10, now=100.0) == [
        "a0", "b0", "b1", "b2", "b3", "b4",
    ]  # fmt: skip
    # A waits for its next token, at 101, which next_due tells the workers.
    assert await job_store.next_due("q") == 101.0
    assert await claimed(job_store, 10, now=100.5) == []
    assert await claimed(job_store, 10, now=101.0) == ["a1"]
    # Its work is still there, AVAILABLE, and not failed.
    assert (await job_store.stats("q")).busiest_keys == (("A", 3),)


async def test_a_rate_limit_can_be_raised_and_lifted(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(10)], now=1.0)
    await job_store.set_rate_limit("q", "A", RateLimit(per_second=0.1, burst=1), now=100.0)
    assert len(await claimed(job_store, 10, now=100.0)) == 1
    with job_store.subscribe("q") as changes:
        await job_store.set_rate_limit("q", "A", RateLimit(per_second=100.0, burst=3), now=100.0)
        change = await changes.next_within(30)
    assert change is not None and change.queue == "q"
    # Lowering a limit hands out no new burst; raising one starts at what was held.
    assert len(await claimed(job_store, 10, now=100.0)) == 0
    assert len(await claimed(job_store, 10, now=100.01)) == 1
    await job_store.set_rate_limit("q", "A", None, now=100.01)
    assert len(await claimed(job_store, 10, now=100.01)) == 8
    # No token is awaited: what is due next is the first claim's lease end.
    assert await job_store.next_due("q") == 100.0 + LEASE


async def remembered_keys(store: JobStore) -> set[str]:
    """The keys whose fairness state the store keeps, read from each backend's own state."""
    if isinstance(store, MemoryJobStore):
        return set(store._queue("q").next_ranks)
    if isinstance(store, SqliteJobStore):
        with closing(sqlite3.connect(store.path)) as connection:
            return {key for (key,) in connection.execute("SELECT key FROM fair_keys")}
    assert isinstance(store, PostgresJobStore)
    async with store._database.connection("read") as connection:
        return {row["key"] for row in await connection.fetch("SELECT key FROM fair_keys")}


async def test_the_sweep_forgets_only_the_keys_no_rank_needs(job_store: JobStore) -> None:
    await job_store.submit([job(f"a{n}", "A") for n in range(3)] + [job("b0", "B")], now=1.0)
    assert await drain(job_store) == ["a0", "b0", "a1", "a2"]
    assert await remembered_keys(job_store) == {"A", "B"}
    await job_store.sweep("q", finished_before=0.0, limit=100)
    # The clock is at a2's rank: B's next is behind it, A's is ahead.
    assert await remembered_keys(job_store) == {"A"}
    # Had A been forgotten too, a3 would start at the clock beside c0 and go first.
    await job_store.submit([job("a3", "A")], now=2.0)
    await job_store.submit([job("c0", "C")], now=3.0)
    assert await drain(job_store) == ["c0", "a3"]
