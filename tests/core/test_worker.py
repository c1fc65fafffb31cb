"""The core's worker over every backend (the job_store fixture): claims in
priority order up to its concurrency, retries with backoff into the dead-letter
queue, cuts attempts at their timeout, wakes on a submission without polling,
keeps long attempts leased, and takes over a dead worker's jobs."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.polling import poll

from queues.backoff import Backoff
from queues.core.attempts import AttemptEnded, Outcome
from queues.core.job_store import JobStore
from queues.core.jobs import Claim, Job, JobState, NewJob
from queues.core.worker import Done, WithClaim, Worker, WorkerSettings
from queues.errors import LostClaimError

FAST = WorkerSettings(
    concurrency=1,
    lease=5.0,
    heartbeat=1.0,
    backoff=Backoff(base=0.01, cap=0.02, jitter=0.0),
    attempt_timeout=5.0,
)


class Handler:
    """Attempts that record their job's name, wait at the name's gate if it has
    one, and fail while the name has failures left."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, int] = {}
        self.hold: set[str] = set()
        self.running = 0
        self.most_running = 0

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def __call__(self, job: Job) -> Done:
        name = job.payload["name"]
        self.started.append(name)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if name in self.gates:
                await self.gates[name].wait()
        finally:
            self.running -= 1
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            raise RuntimeError(f"boom {name}")
        return Done(f"done {name}", hold=name in self.hold)


def job(
    name: str, priority: int = 2, max_attempts: int = 3, timeout: float | None = None
) -> NewJob:
    return NewJob("q", {"name": name}, priority, max_attempts, attempt_timeout=timeout)


@pytest.fixture
async def start_worker(job_store: JobStore) -> AsyncIterator[Callable[..., Any]]:
    started: list[Worker] = []

    async def start(handler: Handler, settings: WorkerSettings = FAST, owner: str = "w1") -> Worker:
        worker = Worker(job_store, "q", handler, owner=owner, settings=settings)
        await worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()


async def final(store: JobStore, job_id: str) -> Job:
    return await poll(lambda: store.get(job_id), lambda j: j.state.is_final, f"job {job_id} final")


async def test_jobs_run_in_priority_order_one_at_a_time(job_store: JobStore, start_worker) -> None:
    handler = Handler()
    handler.gate("first")
    await start_worker(handler)
    [first] = await job_store.submit([job("first")], now=1.0)
    await poll(lambda: handler.started, lambda s: s == ["first"], "the first attempt")
    submitted = await job_store.submit([job("low", 1), job("high", 3), job("normal", 2)], now=2.0)
    handler.gate("first").set()
    for s in [first, *submitted]:
        assert (await final(job_store, s.job.id)).state is JobState.COMPLETED
    assert handler.started == ["first", "high", "normal", "low"]
    assert handler.most_running == 1
    assert (await job_store.get(first.job.id)).result == "done first"


async def test_concurrency_bounds_the_attempts_at_once(job_store: JobStore, start_worker) -> None:
    handler = Handler()
    for n in range(6):
        handler.gate(f"j{n}")
    await start_worker(handler, WorkerSettings(concurrency=3, lease=5.0, heartbeat=1.0))
    submitted = await job_store.submit([job(f"j{n}") for n in range(6)], now=1.0)
    await poll(lambda: handler.running, lambda n: n == 3, "three attempts")
    for gate in handler.gates.values():
        gate.set()
    for s in submitted:
        await final(job_store, s.job.id)
    assert handler.most_running == 3


async def test_failures_retry_with_backoff_then_dead_letter(
    job_store: JobStore, start_worker
) -> None:
    handler = Handler()
    handler.failures = {"flaky": 2, "broken": 9}
    await start_worker(handler)
    flaky, broken = await job_store.submit([job("flaky"), job("broken")], now=1.0)
    done = await final(job_store, flaky.job.id)
    assert (done.state, done.failures, done.attempt) == (JobState.COMPLETED, 2, 3)
    dead = await final(job_store, broken.job.id)
    assert (dead.state, dead.failures, dead.error) == (
        JobState.FAILED,
        3,
        "RuntimeError: boom broken",
    )


async def test_an_attempt_is_cut_at_its_timeout(job_store: JobStore, start_worker) -> None:
    handler = Handler()
    handler.gate("slow")
    handler.gate("own")
    settings = WorkerSettings(concurrency=2, lease=5.0, heartbeat=1.0, attempt_timeout=0.05)
    await start_worker(handler, settings)
    [slow, own] = await job_store.submit(
        [job("slow", max_attempts=1), job("own", max_attempts=1, timeout=0.08)], now=1.0
    )
    ended = await final(job_store, slow.job.id)
    assert (ended.state, ended.error) == (JobState.FAILED, "attempt timed out after 0.05s")
    # A job's own timeout overrides the worker's.
    ended = await final(job_store, own.job.id)
    assert ended.error == "attempt timed out after 0.08s"


async def test_a_result_for_review_holds_the_job(job_store: JobStore, start_worker) -> None:
    handler = Handler()
    handler.hold.add("check")
    await start_worker(handler)
    [check] = await job_store.submit([job("check")], now=1.0)
    held = await poll(
        lambda: job_store.get(check.job.id), lambda j: j.state is JobState.HELD, "held"
    )
    assert held.result == "done check"


async def test_an_idle_worker_wakes_on_a_submission(job_store: JobStore, start_worker) -> None:
    handler = Handler()
    worker = await start_worker(handler)
    # Nothing is due: the worker waits for a change, with no timeout at all.
    assert await job_store.next_due("q") is None
    [late] = await job_store.submit([job("late")], now=1.0)
    assert (await final(job_store, late.job.id)).state is JobState.COMPLETED
    # The store says COMPLETED before the worker's attempt has returned from writing it.
    await poll(lambda: worker.running, lambda n: n == 0, "the attempt to end")


async def test_a_heartbeat_keeps_an_attempt_longer_than_its_lease(
    job_store: JobStore, start_worker
) -> None:
    handler = Handler()
    handler.gate("long")
    # A lease of 1 s renewed every 0.05 s: a busy machine's stalled write
    # must not pass for a lapsed heartbeat.
    settings = WorkerSettings(concurrency=1, lease=1.0, heartbeat=0.05, attempt_timeout=30.0)
    await start_worker(handler, settings)
    [long] = await job_store.submit([job("long")], now=1.0)
    await poll(lambda: handler.started, lambda s: s == ["long"], "the attempt")
    other = Handler()
    await start_worker(other, settings, owner="w2")
    # Two leases long: the second worker would take the job if a lease lapsed.
    first = await job_store.get(long.job.id)
    await poll(
        lambda: job_store.get(long.job.id),
        lambda j: j.lease_until is not None and j.lease_until > (first.lease_until or 0) + 2.0,
        "two leases of heartbeats",
    )
    handler.gate("long").set()
    done = await final(job_store, long.job.id)
    assert (done.state, done.attempt, other.started) == (JobState.COMPLETED, 1, [])


async def test_a_claim_handler_checkpoints_and_the_next_attempt_resumes(
    job_store: JobStore,
) -> None:
    seen: list[dict[str, Any]] = []

    async def count_on(claim: Claim) -> Done:
        payload = claim.job.payload
        seen.append(payload)
        await job_store.update(claim, {"counted": payload["counted"] + 2}, now=time.time())
        if len(seen) == 1:
            raise RuntimeError("cut short")
        return Done(payload["counted"])

    worker = Worker(job_store, "q", WithClaim(count_on), owner="w1", settings=FAST)
    await worker.start()
    try:
        [counting] = await job_store.submit([NewJob("q", {"counted": 0}, 2, 3)], now=1.0)
        done = await final(job_store, counting.job.id)
    finally:
        await worker.stop()
    assert seen == [{"counted": 0}, {"counted": 2}]
    assert (done.state, done.result, done.payload, done.attempt) == (
        JobState.COMPLETED,
        2,
        {"counted": 4},
        2,
    )


async def test_a_stopped_worker_hands_its_cut_attempts_back_at_once(
    job_store: JobStore, start_worker
) -> None:
    handler = Handler()
    handler.gate("long")
    ended: list[AttemptEnded] = []
    # A lease no test outlasts: only the hand-back lets another worker in.
    settings = WorkerSettings(concurrency=1, lease=3600.0, heartbeat=60.0, observer=ended.append)
    stopping = await start_worker(handler, settings, owner="w1")
    [long] = await job_store.submit([job("long")], now=time.time())
    await poll(lambda: job_store.get(long.job.id), lambda j: j.state is JobState.RUNNING, "run")
    await stopping.stop()
    handed_back = await job_store.get(long.job.id)
    assert (handed_back.state, handed_back.failures, handed_back.lease_owner) == (
        JobState.AVAILABLE,
        0,
        "",
    )
    handler.gate("long").set()
    await start_worker(handler, settings, owner="w2")
    done = await final(job_store, long.job.id)
    assert (done.state, done.attempt, handler.started) == (JobState.COMPLETED, 2, ["long", "long"])
    # The cut attempt is told as cancelled; the first attempt alone has a wait.
    assert [(e.outcome, e.waited is not None, e.taken_over) for e in ended] == [
        (Outcome.CANCELLED, True, False),
        (Outcome.SUCCEEDED, False, False),
    ]


async def test_a_dead_workers_job_is_taken_over_once_its_lease_expires(
    job_store: JobStore, start_worker
) -> None:
    [stuck] = await job_store.submit([job("stuck")], now=time.time())
    # A worker that claimed the job and died: no heartbeat, no outcome.
    [dead] = await job_store.claim("q", "dead", limit=1, lease=0.2, now=time.time())
    handler = Handler()
    ended: list[AttemptEnded] = []
    await start_worker(
        handler, WorkerSettings(concurrency=1, lease=5.0, heartbeat=1.0, observer=ended.append)
    )
    done = await final(job_store, stuck.job.id)
    assert (done.state, done.attempt, handler.started) == (JobState.COMPLETED, 2, ["stuck"])
    assert [(e.queue, e.outcome, e.taken_over) for e in ended] == [("q", Outcome.SUCCEEDED, True)]
    with pytest.raises(LostClaimError):
        await job_store.complete(dead, "late", hold=False, now=time.time())
