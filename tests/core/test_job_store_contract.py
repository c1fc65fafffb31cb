"""The JobStore contract, which every backend passes alike (the job_store
fixture, tests/core/conftest.py, runs each test on each backend)."""

import asyncio
import dataclasses

import pytest

from queues.core.job_store import JobStore
from queues.core.jobs import JobState, NewJob
from queues.errors import (
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)

LEASE = 30.0


def job(name: str = "x", priority: int = 2, request_id: str = "", queue: str = "q") -> NewJob:
    return NewJob(
        queue=queue,
        payload={"name": name},
        priority=priority,
        max_attempts=3,
        request_id=request_id,
        fingerprint=f"fp-{name}",
    )


async def names_claimed(store: JobStore, limit: int, now: float = 10.0) -> list[str]:
    claims = await store.claim("q", "w1", limit=limit, lease=LEASE, now=now)
    return [claim.job.payload["name"] for claim in claims]


async def test_a_submitted_job_reads_back_as_submitted(job_store: JobStore) -> None:
    nested = NewJob("q", {"a": [1, 2.5, None, {"b": "é"}]}, 3, 5, "r1", "fp", 7.5)
    [submitted] = await job_store.submit([nested], now=1.5)
    assert submitted.created
    read = await job_store.get(submitted.job.id)
    assert read == submitted.job
    assert (read.queue, read.payload, read.priority, read.max_attempts) == (
        "q",
        {"a": [1, 2.5, None, {"b": "é"}]},
        3,
        5,
    )
    assert (read.state, read.attempt, read.failures, read.created_at) == (
        JobState.AVAILABLE,
        0,
        0,
        1.5,
    )
    assert (read.request_id, read.fingerprint, read.run_at, read.lease_until) == (
        "r1",
        "fp",
        None,
        None,
    )
    assert (read.attempt_timeout, read.started_at, read.review) == (7.5, None, None)


async def test_seq_rises_in_submission_order_across_batches(job_store: JobStore) -> None:
    first = await job_store.submit([job("a"), job("b")], now=1.0)
    second = await job_store.submit([job("c")], now=1.0)
    seqs = [s.job.seq for s in [*first, *second]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


async def test_claims_take_higher_priority_first_then_fifo(job_store: JobStore) -> None:
    await job_store.submit(
        [job("low", 1), job("n1", 2), job("high", 3), job("n2", 2), job("n3", 2)], now=1.0
    )
    assert await names_claimed(job_store, 2) == ["high", "n1"]
    assert await names_claimed(job_store, 10) == ["n2", "n3", "low"]
    assert await names_claimed(job_store, 10) == []


async def test_a_claim_starts_an_attempt_under_a_lease(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "worker-7", limit=1, lease=LEASE, now=10.0)
    assert claim.token == 1
    read = await job_store.get(claim.id)
    assert (read.state, read.attempt, read.lease_owner, read.lease_until, read.started_at) == (
        JobState.RUNNING,
        1,
        "worker-7",
        10.0 + LEASE,
        10.0,
    )


async def test_concurrent_claims_never_take_a_job_twice(job_store: JobStore) -> None:
    await job_store.submit([job(f"j{n}") for n in range(20)], now=1.0)
    rounds = await asyncio.gather(*(names_claimed(job_store, 3) for _ in range(10)))
    claimed = [name for names in rounds for name in names]
    assert sorted(claimed) == sorted(f"j{n}" for n in range(20))


async def test_a_job_in_backoff_is_not_claimed_before_its_time(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    retried = await job_store.retry(claim, "boom", run_at=20.0, now=11.0)
    assert (retried.state, retried.failures, retried.error, retried.run_at) == (
        JobState.AVAILABLE,
        1,
        "boom",
        20.0,
    )
    assert retried.lease_owner == "" and retried.lease_until is None
    assert await names_claimed(job_store, 1, now=19.9) == []
    assert await names_claimed(job_store, 1, now=20.0) == ["a"]


async def test_an_expired_lease_is_claimed_again_and_fences_out_the_old_worker(
    job_store: JobStore,
) -> None:
    await job_store.submit([job("a")], now=1.0)
    [old] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    assert await job_store.claim("q", "w2", limit=1, lease=LEASE, now=10.0 + LEASE - 0.1) == []
    [new] = await job_store.claim("q", "w2", limit=1, lease=LEASE, now=10.0 + LEASE)
    assert (new.id, new.token, new.job.lease_owner) == (old.id, 2, "w2")
    assert (old.taken_over, new.taken_over) == (False, True)
    with pytest.raises(LostClaimError, match="is no longer held by attempt 1"):
        await job_store.complete(old, "late", hold=False, now=50.0)
    with pytest.raises(LostClaimError):
        await job_store.retry(old, "late", run_at=50.0, now=50.0)
    with pytest.raises(LostClaimError):
        await job_store.fail(old, "late", now=50.0)
    assert await job_store.extend([old, new], lease=LEASE, now=50.0) == [False, True]
    done = await job_store.complete(new, {"price": 7}, hold=False, now=51.0)
    assert (done.state, done.result, done.attempt, done.finished_at) == (
        JobState.COMPLETED,
        {"price": 7},
        2,
        51.0,
    )


async def test_an_update_checkpoints_the_payload_under_the_claim(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    with job_store.subscribe("q") as changes:
        updated = await job_store.update(claim, {"name": "a", "cursor": 7}, now=11.0)
        heard = await changes.next_within(10.0)
    assert heard is not None and (heard.job_id, heard.state) == (claim.id, JobState.RUNNING)
    assert updated == await job_store.get(claim.id)
    assert updated == dataclasses.replace(claim.job, payload={"name": "a", "cursor": 7})
    # The claim still holds the job: it checkpoints again, heartbeats and ends it.
    await job_store.update(claim, {"name": "a", "cursor": 9}, now=12.0)
    assert await job_store.extend([claim], lease=LEASE, now=13.0) == [True]
    done = await job_store.complete(claim, {"price": 3}, hold=False, now=14.0)
    assert (done.state, done.payload, done.result) == (
        JobState.COMPLETED,
        {"name": "a", "cursor": 9},
        {"price": 3},
    )
    with pytest.raises(LostClaimError):
        await job_store.update(claim, {"name": "late"}, now=15.0)


async def test_an_update_under_a_claim_taken_over_is_refused(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [old] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    await job_store.update(old, {"cursor": 1}, now=11.0)
    [new] = await job_store.claim("q", "w2", limit=1, lease=LEASE, now=10.0 + LEASE)
    assert new.job.payload == {"cursor": 1}, "the next attempt resumes from the checkpoint"
    with pytest.raises(LostClaimError, match="is no longer held by attempt 1"):
        await job_store.update(old, {"cursor": 0}, now=50.0)
    read = await job_store.get(new.id)
    assert (read.payload, read.lease_owner, read.attempt) == ({"cursor": 1}, "w2", 2)
    await job_store.cancel(new.id, now=51.0)
    with pytest.raises(LostClaimError):
        await job_store.update(new, {"cursor": 2}, now=52.0)


async def test_a_released_job_is_claimable_at_once_with_no_failure_counted(
    job_store: JobStore,
) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    with job_store.subscribe("q") as changes:
        released = await job_store.release(claim, now=11.0)
        # PostgreSQL may deliver the claim's own notification first.
        while (heard := await changes.next_within(10.0)) is not None:
            if heard.state is JobState.AVAILABLE:
                break
    assert heard is not None and heard.job_id == claim.id
    assert (released.state, released.attempt, released.failures, released.lease_owner) == (
        JobState.AVAILABLE,
        1,
        0,
        "",
    )
    assert released == await job_store.get(claim.id)
    # Long before the lease would have run out, another worker takes it.
    [again] = await job_store.claim("q", "w2", limit=1, lease=LEASE, now=12.0)
    assert (again.id, again.token, again.job.failures) == (claim.id, 2, 0)
    with pytest.raises(LostClaimError):
        await job_store.release(claim, now=13.0)


async def test_a_heartbeat_keeps_the_claim(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    assert await job_store.extend([claim], lease=LEASE, now=35.0) == [True]
    assert (await job_store.get(claim.id)).lease_until == 35.0 + LEASE
    assert await job_store.claim("q", "w2", limit=1, lease=LEASE, now=10.0 + LEASE) == []


async def test_a_late_outcome_is_written_while_no_one_else_claimed_the_job(
    job_store: JobStore,
) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    done = await job_store.complete(claim, "r", hold=False, now=10.0 + 2 * LEASE)
    assert done.state is JobState.COMPLETED


async def test_a_last_failure_dead_letters_and_redrive_brings_it_back(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    failed = await job_store.fail(claim, "gave up", now=12.0)
    assert (failed.state, failed.failures, failed.error, failed.finished_at) == (
        JobState.FAILED,
        1,
        "gave up",
        12.0,
    )
    assert await names_claimed(job_store, 1, now=100.0) == []
    redriven = await job_store.redrive(failed.id, now=13.0)
    assert (redriven.state, redriven.failures, redriven.finished_at) == (
        JobState.AVAILABLE,
        0,
        None,
    )
    [again] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=14.0)
    assert again.token == 2, "attempts are counted honestly across a redrive"
    with pytest.raises(InvalidStateError, match=r"cannot redrive job .*: it is running"):
        await job_store.redrive(failed.id, now=15.0)


async def test_a_held_result_waits_for_a_decision(job_store: JobStore) -> None:
    await job_store.submit([job("a"), job("b")], now=1.0)
    first, second = await job_store.claim("q", "w1", limit=2, lease=LEASE, now=10.0)
    held = await job_store.complete(first, "r1", hold=True, now=11.0)
    assert (held.state, held.result, held.finished_at, held.lease_until) == (
        JobState.HELD,
        "r1",
        None,
        None,
    )
    review = {"reviewer": "ana", "note": "fine"}
    approved = await job_store.decide(first.id, approve=True, review=review, now=12.0)
    assert (approved.state, approved.finished_at, approved.review) == (
        JobState.COMPLETED,
        12.0,
        review,
    )
    await job_store.complete(second, "r2", hold=True, now=11.0)
    rejected = await job_store.decide(second.id, approve=False, review=None, now=13.0)
    assert rejected.state is JobState.REJECTED
    with pytest.raises(InvalidStateError, match=r"cannot approve job .*: it is completed"):
        await job_store.decide(first.id, approve=True, review=None, now=14.0)


async def test_cancel_refuses_a_running_attempts_outcome_and_final_jobs(
    job_store: JobStore,
) -> None:
    [waiting, running] = await job_store.submit([job("a", 3), job("b", 1)], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    assert claim.id == waiting.job.id
    cancelled = await job_store.cancel(claim.id, now=11.0)
    assert (cancelled.state, cancelled.finished_at) == (JobState.CANCELLED, 11.0)
    with pytest.raises(LostClaimError):
        await job_store.complete(claim, "late", hold=False, now=12.0)
    assert (await job_store.cancel(running.job.id, now=12.0)).state is JobState.CANCELLED
    assert await names_claimed(job_store, 5) == []
    with pytest.raises(InvalidStateError, match=r"cannot cancel job .*: it is cancelled"):
        await job_store.cancel(claim.id, now=13.0)


async def test_unknown_ids_are_not_found(job_store: JobStore) -> None:
    for call in (
        job_store.get("nope"),
        job_store.cancel("nope", now=1.0),
        job_store.redrive("nope", now=1.0),
        job_store.decide("nope", approve=True, review=None, now=1.0),
    ):
        with pytest.raises(NotFoundError, match="job 'nope' not found"):
            await call


async def test_a_request_id_makes_one_job_and_a_different_request_is_refused(
    job_store: JobStore,
) -> None:
    [first] = await job_store.submit([job("a", request_id="r1")], now=1.0)
    [again] = await job_store.submit([job("a", request_id="r1")], now=2.0)
    assert first.created and not again.created and again.job.id == first.job.id
    with pytest.raises(RequestConflictError, match="'r1' was already used"):
        await job_store.submit([job("other", request_id="r1")], now=3.0)
    # Request ids are scoped to their queue.
    [elsewhere] = await job_store.submit([job("a", request_id="r1", queue="q2")], now=4.0)
    assert elsewhere.created and elsewhere.job.id != first.job.id


async def test_repeats_within_a_batch_make_one_job(job_store: JobStore) -> None:
    submitted = await job_store.submit(
        [job("a", request_id="r1"), job("b"), job("a", request_id="r1")], now=1.0
    )
    assert [s.created for s in submitted] == [True, True, False]
    assert submitted[2].job.id == submitted[0].job.id
    assert (await job_store.stats("q")).count(JobState.AVAILABLE) == 2


async def test_a_batch_is_all_or_nothing(job_store: JobStore) -> None:
    await job_store.submit([job("a", request_id="r1")], now=1.0)
    with pytest.raises(RequestConflictError):
        await job_store.submit([job("b"), job("other", request_id="r1")], now=2.0)
    with pytest.raises(RequestConflictError):
        await job_store.submit([job("c", request_id="r2"), job("d", request_id="r2")], now=2.0)
    stats = await job_store.stats("q")
    assert stats.count(JobState.AVAILABLE) == 1


async def test_the_bound_counts_unfinished_jobs_and_admits_all_or_none(
    job_store: JobStore,
) -> None:
    await job_store.submit([job("a"), job("b")], now=1.0, max_unfinished=3)
    with pytest.raises(QueueFullError):
        await job_store.submit([job("c"), job("d")], now=2.0, max_unfinished=3)
    assert (await job_store.stats("q")).count(JobState.AVAILABLE) == 2
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    await job_store.complete(claim, "r", hold=False, now=11.0)
    await job_store.submit([job("c"), job("d")], now=12.0, max_unfinished=3)
    # A repeat adds nothing, so a full queue still answers it.
    [repeat] = await job_store.submit([job("a", request_id="r")], now=13.0, max_unfinished=4)
    assert repeat.created
    [again] = await job_store.submit([job("a", request_id="r")], now=14.0, max_unfinished=4)
    assert not again.created
    # Other queues do not count.
    await job_store.submit([job("e", queue="q2")], now=15.0, max_unfinished=1)


async def test_list_pages_by_seq_with_a_state_filter(job_store: JobStore) -> None:
    submitted = await job_store.submit([job(f"j{n}") for n in range(5)], now=1.0)
    await job_store.submit([job("other", queue="q2")], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=10.0)
    page = await job_store.list("q", states=None, after=0, limit=2)
    assert [j.payload["name"] for j in page.jobs] == ["j0", "j1"]
    assert page.next_after == page.jobs[-1].seq
    rest = await job_store.list("q", states=None, after=page.next_after, limit=10)
    assert [j.payload["name"] for j in rest.jobs] == ["j2", "j3", "j4"]
    assert rest.next_after is None
    running = await job_store.list("q", states=frozenset({JobState.RUNNING}), after=0, limit=10)
    assert [j.id for j in running.jobs] == [claim.id] == [submitted[0].job.id]
    exact = await job_store.list("q", states=None, after=0, limit=5)
    assert len(exact.jobs) == 5 and exact.next_after is None


async def test_stats_count_every_state_exactly(job_store: JobStore) -> None:
    await job_store.submit([job(f"j{n}") for n in range(6)], now=1.0)
    await job_store.submit([job("other", queue="q2")], now=1.0)
    a, b, c, d = await job_store.claim("q", "w1", limit=4, lease=LEASE, now=10.0)
    await job_store.complete(a, "r", hold=False, now=11.0)
    await job_store.complete(b, "r", hold=True, now=11.0)
    await job_store.fail(c, "e", now=11.0)
    await job_store.cancel(d.id, now=11.0)
    stats = await job_store.stats("q")
    assert stats.by_state() == {
        JobState.AVAILABLE: 2,
        JobState.RUNNING: 0,
        JobState.HELD: 1,
        JobState.COMPLETED: 1,
        JobState.FAILED: 1,
        JobState.CANCELLED: 1,
        JobState.REJECTED: 0,
    }


async def test_the_sweep_removes_final_jobs_finished_before_the_cut(job_store: JobStore) -> None:
    submitted = await job_store.submit(
        [job(f"j{n}", request_id=f"r{n}") for n in range(4)], now=1.0
    )
    claims = await job_store.claim("q", "w1", limit=3, lease=LEASE, now=10.0)
    for n, claim in enumerate(claims):
        await job_store.complete(claim, "r", hold=False, now=20.0 + n)
    assert await job_store.sweep("q", finished_before=21.5, limit=1) == 1
    assert await job_store.sweep("q", finished_before=21.5, limit=10) == 1
    assert await job_store.sweep("q", finished_before=21.5, limit=10) == 0
    with pytest.raises(NotFoundError):
        await job_store.get(submitted[0].job.id)
    await job_store.get(submitted[2].job.id)  # finished at 22: kept
    await job_store.get(submitted[3].job.id)  # unfinished: kept
    # A swept job's request id is free again.
    [fresh] = await job_store.submit([job("j0", request_id="r0")], now=30.0)
    assert fresh.created and fresh.job.id != submitted[0].job.id


async def test_subscribers_hear_every_change_of_their_queue(job_store: JobStore) -> None:
    with job_store.subscribe("q") as changes, job_store.subscribe("q2") as other:
        [submitted] = await job_store.submit([job("a")], now=1.0)
        [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=2.0)
        await job_store.extend([claim], lease=LEASE, now=3.0)  # no change of state
        await job_store.retry(claim, "boom", run_at=4.0, now=3.0)
        [again] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=4.0)
        await job_store.complete(again, "r", hold=True, now=5.0)
        await job_store.decide(submitted.job.id, approve=True, review=None, now=6.0)
        heard = [await changes.next_within(10.0) for _ in range(6)]
        assert [(c.job_id, c.state) for c in heard if c is not None] == [
            (submitted.job.id, state)
            for state in (
                JobState.AVAILABLE,
                JobState.RUNNING,
                JobState.AVAILABLE,
                JobState.RUNNING,
                JobState.HELD,
                JobState.COMPLETED,
            )
        ]
        assert await other.next_within(0.05) is None


async def test_next_due_is_the_earliest_backoff_or_lease_end(job_store: JobStore) -> None:
    assert await job_store.next_due("q") is None
    await job_store.submit([job("a"), job("b"), job("c")], now=1.0)
    assert await job_store.next_due("q") is None, "ready jobs wait for no time"
    first, second = await job_store.claim("q", "w1", limit=2, lease=LEASE, now=10.0)
    assert await job_store.next_due("q") == 10.0 + LEASE
    await job_store.retry(first, "boom", run_at=25.0, now=11.0)
    assert await job_store.next_due("q") == 25.0
    await job_store.complete(second, "r", hold=False, now=12.0)
    assert await job_store.next_due("q") == 25.0
    assert await job_store.next_due("q2") is None


async def test_stats_count_by_priority_with_the_oldest_waiting_and_running(
    job_store: JobStore,
) -> None:
    await job_store.submit([job("h1", 3), job("n1", 2)], now=1.0)
    await job_store.submit([job("h2", 3), job("l1", 1)], now=2.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=5.0)
    assert claim.job.payload["name"] == "h1"
    stats = await job_store.stats("q")
    assert stats.by_state_priority == {
        (JobState.RUNNING, 3): 1,
        (JobState.AVAILABLE, 3): 1,
        (JobState.AVAILABLE, 2): 1,
        (JobState.AVAILABLE, 1): 1,
    }
    assert (stats.oldest_available, stats.earliest_started) == (1.0, 5.0)
    assert (stats.ahead_of(3), stats.ahead_of(2), stats.ahead_of(1)) == (1, 2, 3)
    empty = await job_store.stats("q2")
    assert (empty.by_state_priority, empty.oldest_available, empty.earliest_started) == (
        {},
        None,
        None,
    )


async def test_a_job_claimed_as_it_is_added_runs_its_first_attempt(job_store: JobStore) -> None:
    with job_store.subscribe("q") as changes:
        claim = await job_store.claim_new(
            job("inline", 3), owner="api-1", lease=LEASE, now=5.0, max_unfinished=None
        )
        heard = await changes.next_within(10.0)
    assert (claim.token, claim.job.state, claim.job.lease_owner) == (1, JobState.RUNNING, "api-1")
    assert (claim.job.started_at, claim.job.lease_until, claim.job.created_at) == (
        5.0,
        5.0 + LEASE,
        5.0,
    )
    assert heard is not None and heard.job_id == claim.id
    assert await names_claimed(job_store, 5) == [], "no worker takes it"
    done = await job_store.complete(claim, "r", hold=False, now=6.0)
    assert done.state is JobState.COMPLETED


async def test_a_job_claimed_as_it_is_added_counts_against_the_bound(job_store: JobStore) -> None:
    await job_store.submit([job("a")], now=1.0)
    with pytest.raises(QueueFullError):
        await job_store.claim_new(job("b"), owner="api", lease=LEASE, now=2.0, max_unfinished=1)
    assert (await job_store.stats("q")).by_state()[JobState.AVAILABLE] == 1
    assert (await job_store.stats("q")).count(JobState.RUNNING) == 0


async def test_stats_stay_exact_through_redrive_decisions_and_the_sweep(
    job_store: JobStore,
) -> None:
    await job_store.submit([job(f"j{n}", priority=n % 3 + 1) for n in range(9)], now=1.0)
    claims = await job_store.claim("q", "w1", limit=9, lease=LEASE, now=2.0)
    for n, claim in enumerate(claims):
        if n % 3 == 0:
            await job_store.fail(claim, "e", now=3.0)
        elif n % 3 == 1:
            await job_store.complete(claim, "r", hold=True, now=3.0)
        else:
            await job_store.complete(claim, "r", hold=False, now=3.0)
    failed = [c.id for n, c in enumerate(claims) if n % 3 == 0]
    held = [c.id for n, c in enumerate(claims) if n % 3 == 1]
    await job_store.redrive(failed[0], now=4.0)
    await job_store.decide(held[0], approve=False, review=None, now=4.0)
    assert await job_store.sweep("q", finished_before=100.0, limit=100) == 6
    stats = await job_store.stats("q")
    assert stats.by_state() == {
        JobState.AVAILABLE: 1,
        JobState.RUNNING: 0,
        JobState.HELD: 2,
        JobState.COMPLETED: 0,
        JobState.FAILED: 0,
        JobState.CANCELLED: 0,
        JobState.REJECTED: 0,
    }
    assert sum(stats.by_state_priority.values()) == 3
    assert stats.earliest_started is None and stats.oldest_available == 1.0


async def test_a_lead_has_one_holder_until_it_runs_out(job_store: JobStore) -> None:
    assert await job_store.lead("sweep", "a", ttl=10.0, now=0.0)
    assert not await job_store.lead("sweep", "b", ttl=10.0, now=5.0)
    assert await job_store.lead("other", "b", ttl=10.0, now=5.0), "leads are by name"
    assert await job_store.lead("sweep", "a", ttl=10.0, now=9.0), "the holder renews it"
    assert not await job_store.lead("sweep", "b", ttl=10.0, now=18.9)
    assert await job_store.lead("sweep", "b", ttl=10.0, now=19.0), "taken once it ran out"
    assert not await job_store.lead("sweep", "a", ttl=10.0, now=20.0)


async def test_concurrent_submissions_are_each_all_or_none_under_the_bound(
    job_store: JobStore,
) -> None:
    # Stores may write concurrent submissions together (group commit); each
    # still answers as if written alone.
    results = await asyncio.gather(
        *(job_store.submit([job(f"n{i}")], now=1.0, max_unfinished=3) for i in range(5)),
        job_store.submit([job("pair-a"), job("pair-b")], now=1.0, max_unfinished=3),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, QueueFullError)]
    assert len(made) + len(refused) == 6
    assert sum(len(r) for r in made) == 3
    stats = await job_store.stats("q")
    assert stats.count(JobState.AVAILABLE) == 3


async def test_concurrent_submissions_of_one_request_id_make_one_job_or_conflict(
    job_store: JobStore,
) -> None:
    same = [job("a", request_id="r1") for _ in range(4)]
    other = NewJob("q", {"name": "b"}, 2, 3, "r1", "another-fingerprint")
    results = await asyncio.gather(
        *(job_store.submit([new], now=1.0) for new in same),
        job_store.submit([other], now=1.0),
        job_store.submit([job("free")], now=1.0),
        return_exceptions=True,
    )
    answers = [r[0] for r in results if isinstance(r, list)]
    conflicts = [r for r in results if isinstance(r, RequestConflictError)]
    ids = {a.job.id for a in answers if a.job.request_id == "r1"}
    assert len(ids) == 1 and sum(a.created for a in answers) == 2
    # The other fingerprint conflicts, unless it came first: then the four do.
    assert len(conflicts) in (1, 4)
    assert (await job_store.stats("q")).count(JobState.AVAILABLE) == 2


async def test_a_jobs_trace_is_kept_from_submission_to_every_claim(job_store: JobStore) -> None:
    queued_in = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    inline_in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    [submitted] = await job_store.submit([NewJob("q", {}, 1, 3, trace=queued_in)], now=1.0)
    [claim] = await job_store.claim("q", "w1", limit=1, lease=LEASE, now=2.0)
    inline = await job_store.claim_new(
        NewJob("q", {}, 1, 3, trace=inline_in), owner="w1", lease=LEASE, now=3.0,
        max_unfinished=None,
    )  # fmt: skip
    assert (submitted.job.trace, claim.job.trace, inline.job.trace) == (
        queued_in,
        queued_in,
        inline_in,
    )
    assert (await job_store.get(inline.id)).trace == inline_in
    [untraced] = await job_store.submit([job("plain")], now=4.0)
    assert untraced.job.trace == ""
