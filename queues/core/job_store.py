"""The durable core's seam: a JobStore owns the queue.

Unlike a journal replayed at start (queues/storage.py), a JobStore is the
queue: producers submit to it, workers on any process claim from it, and every
read (get, list, stats) answers from it, so replicas over one database share
one queue. MemoryJobStore keeps it in this process (tests); SqliteJobStore in a
file; PostgresJobStore in a database many replicas share. All three pass one
contract suite (tests/core/test_job_store_contract.py).

Times are passed in (`now`), never read by the store, so that the rules hold
the same on every backend and tests control the clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from queues.core.changes import JobChange, Subscription
from queues.core.fairness import NO_POLICY, ClaimPolicy
from queues.core.jobs import Claim, Job, JobState, NewJob, Page, QueueCounts, Submitted
from queues.core.rate_limits import RateLimit


class JobStore(Protocol):
    #: What errors call the store: its file or database.
    name: str

    async def open(self) -> None:
        """Make the store ready, creating or migrating its schema. Raises
        StoreError naming the store if it cannot be used."""

    async def close(self) -> None:
        """Finish what is under way, then release the store."""

    async def submit(
        self, jobs: Sequence[NewJob], *, now: float, max_unfinished: int | None = None
    ) -> list[Submitted]:
        """Add jobs, all or none, answering one Submitted per job in order,
        each ranked among its queue's fairness keys (fairness.ranks). A
        job whose request_id its queue has seen answers the job it made then
        (created False). Raises RequestConflictError for a seen request_id with
        another fingerprint, and QueueFullError when the new jobs would take the
        queue's unfinished jobs past max_unfinished (the job's queue; retry_after
        0, for the caller to fill in)."""

    async def claim_new(
        self, job: NewJob, *, owner: str, lease: float, now: float, max_unfinished: int | None
    ) -> Claim:
        """Add job claimed at once by owner, its first attempt started now (an
        inline run, in the caller). Raises QueueFullError as submit does; job
        has no request_id."""

    async def claim(
        self,
        queue: str,
        owner: str,
        *,
        limit: int,
        lease: float,
        now: float,
        policy: ClaimPolicy = NO_POLICY,
    ) -> list[Claim]:
        """Claim up to limit claimable jobs of queue (rules.is_claimable) in
        claim order (fairness.claim_order under policy), passing over the keys
        at policy's cap and those out of tokens (set_rate_limit), each claim
        of a limited key taking a token (fairness.choose, rate_limits.py),
        each starting its next attempt,
        leased to owner until now + lease, started at now; answered in claim
        order. The queue's clock moves to the highest rank taken. Concurrent
        claims never take one job twice, nor, with a cap, exceed it. Every job
        a claim may take is among what a store reads for it: for each priority,
        the first in rank order and, with aging, the longest due."""

    async def extend(self, claims: Sequence[Claim], *, lease: float, now: float) -> list[bool]:
        """Extend each claim's lease to now + lease (the heartbeat); False for a
        claim that no longer holds its job (rules.holds)."""

    async def complete(self, claim: Claim, result: Any, *, hold: bool, now: float) -> Job:
        """The claimed attempt succeeded: the job is COMPLETED with result, or
        HELD for a human decision when hold. Raises LostClaimError if the claim
        no longer holds the job."""

    async def update(self, claim: Claim, payload: Any, *, now: float) -> Job:
        """Replace the claimed job's payload with payload (JSON): a checkpoint
        the running attempt writes (say, a cursor and what it collected so
        far), so that the next attempt, on any process, resumes from it. State,
        lease and attempt stay as they are, and the claim still holds the job.
        Announced as a change to RUNNING, so a watcher reads the new payload.
        Raises LostClaimError if the claim no longer holds the job."""

    async def release(self, claim: Claim, *, now: float) -> Job:
        """Hand the claimed job back unfinished, as a worker that stops does:
        it is AVAILABLE again at once, for any process to claim, with no
        failure counted (the cut attempt still counts as an attempt). Raises
        LostClaimError."""

    async def retry(self, claim: Claim, error: str, *, run_at: float, now: float) -> Job:
        """The claimed attempt failed and another follows, not before run_at:
        the job is AVAILABLE again with one more failure. Raises LostClaimError."""

    async def fail(self, claim: Claim, error: str, *, now: float) -> Job:
        """The claimed attempt failed and was the last: the job is FAILED (the
        dead-letter queue) with one more failure. Raises LostClaimError."""

    async def cancel(self, job_id: str, *, now: float) -> Job:
        """Cancel an unfinished or held job; a running attempt's outcome is then
        refused (LostClaimError). Raises NotFoundError, or InvalidStateError for
        a final job."""

    async def redrive(self, job_id: str, *, now: float) -> Job:
        """Move a FAILED job back to AVAILABLE with its failures reset. Raises
        NotFoundError, or InvalidStateError for a job that is not FAILED."""

    async def decide(self, job_id: str, *, approve: bool, review: Any, now: float) -> Job:
        """A human's decision on a HELD job: COMPLETED if approve, else
        REJECTED, keeping review (JSON: who decided, and why). Raises
        NotFoundError, or InvalidStateError if not HELD."""

    async def get(self, job_id: str) -> Job:
        """The job as it is now. Raises NotFoundError."""

    async def list(
        self, queue: str, *, states: frozenset[JobState] | None, after: int, limit: int
    ) -> Page:
        """Up to limit jobs of queue in one of states (any, for None) whose seq
        is above after, in seq order."""

    async def stats(self, queue: str) -> QueueCounts:
        """How many jobs of queue are in each state and priority, exactly, with
        the oldest available job's creation, the longest attempt's start and
        the available jobs of the busiest fairness keys."""

    def subscribe(self, queue: str) -> contextlib.AbstractContextManager[Subscription[JobChange]]:
        """While the context lasts, the changes of queue's jobs, made by any
        process over this store (changes.py): every submission, claim, outcome
        and transition, each as the job's id and new state."""

    async def next_due(self, queue: str) -> float | None:
        """The earliest time at which time alone makes a job of queue claimable
        (a schedule's or a retry's run_at, a lease's end, the next token of a
        rate-limited key with AVAILABLE jobs); None if none will. A worker
        waits for it or for a change, whichever comes first, and never polls."""

    async def set_rate_limit(
        self, queue: str, key: str, limit: RateLimit | None, *, now: float
    ) -> None:
        """Limit how fast claims take queue's jobs of fairness key `key`
        (rate_limits.py), for every process over this store; None lifts the
        limit. Announced as a change of queue (a JobChange with id ""), so
        that idle workers claim again under the new limit."""

    async def lead(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        """Whether owner holds the lease called name, from now until now + ttl:
        taken when no one holds it or its holder's has run out, renewed when
        owner holds it already. One holder at a time over this store, however
        many processes share it: what runs a periodic duty (the retention
        sweep) once per interval, not once per replica."""

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        """Remove up to limit final jobs of queue that finished before
        finished_before, with their request ids, and up to limit keys'
        fairness state that no rank needs any more (fairness.forgettable);
        answers how many jobs."""
