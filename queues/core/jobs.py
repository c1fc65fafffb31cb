"""What the durable core keeps: jobs, each in one queue, and the claims on them.

A job is work the store owns from submission to removal. Workers claim the
best ready jobs under a lease; each claim starts an attempt, and the attempt's
number is the claim's fencing token: an outcome is written only under the token
of the job's current attempt, so a worker whose lease expired (and whose job
another worker has claimed since) cannot overwrite the new attempt's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from queues.core.traces import current_trace


class JobState(StrEnum):
    #: Waiting to be claimed; not before run_at (a schedule, a retry's backoff), when set.
    AVAILABLE = "available"
    #: Claimed under a lease; claimed again by another worker once it expires.
    RUNNING = "running"
    #: An attempt succeeded and its result waits for a human decision.
    HELD = "held"
    COMPLETED = "completed"
    #: Every allowed attempt failed: the job is in the dead-letter queue.
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A human refused the held result.
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_unfinished(self) -> bool:
        """Counts against a queue's bound: work the queue still has to do."""
        return self is JobState.AVAILABLE or self is JobState.RUNNING


FINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED}
)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job as a producer submits it."""

    queue: str
    #: Anything JSON holds; the store keeps it as JSON.
    payload: Any
    #: Higher is claimed first; FIFO within a priority.
    priority: int
    #: Attempts allowed before the job fails into the dead-letter queue (at least 1).
    max_attempts: int
    #: Makes the submission idempotent within its queue; "" for none.
    request_id: str = ""
    #: What the request said, so a reused request_id with a different request is
    #: told apart from a repeat of the same one.
    fingerprint: str = ""
    #: The longest one attempt may run, in seconds; None for the worker's default.
    attempt_timeout: float | None = None
    #: The trace the submission was made in (a W3C traceparent), so the
    #: attempts, run later and maybe elsewhere, join it; "" for none. By
    #: default the trace current where the job is made.
    trace: str = field(default_factory=current_trace)
    #: Whose work this is (a tenant, a broker, an order): within one effective
    #: priority, claims serve the keys in turn (fairness.py).
    fairness_key: str = ""
    #: The key's share of the turns, relative to the others' (positive).
    weight: float = 1.0
    #: Not claimed before this time (scheduled work); None for at once.
    run_at: float | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the store holds it now."""

    id: str
    queue: str
    #: Submission order across the store: FIFO within a priority, and the paging cursor.
    seq: int
    payload: Any
    priority: int
    state: JobState
    max_attempts: int
    #: Attempts started, ever: the fencing token of the latest claim. Never reset.
    attempt: int
    #: Attempts that failed since submission or the last redrive: what the retry policy counts.
    failures: int
    created_at: float
    #: Not claimed before this time (a schedule, a retry's backoff); None for at once.
    run_at: float | None
    #: The worker holding the current claim, and until when; "" and None when unclaimed.
    lease_owner: str
    lease_until: float | None
    result: Any
    #: The last attempt's error; "" when none failed.
    error: str
    finished_at: float | None
    request_id: str
    fingerprint: str
    attempt_timeout: float | None
    #: When the latest attempt was claimed; None before the first.
    started_at: float | None
    #: What the human decision on a held result recorded (who, why); None before one.
    review: Any
    #: NewJob.trace: the trace the submission was made in; "" for none.
    trace: str = ""
    fairness_key: str = ""
    #: The job's turn among its queue's keys (fairness.ranks), set when submitted.
    rank: float = 0.0
    #: When the job became due, which aging counts from: its schedule, else
    #: its submission.
    ready_at: float = 0.0

    @property
    def scheduled_for(self) -> float | None:
        """The time the job was scheduled for; None if it was due when submitted."""
        return self.ready_at if self.ready_at > self.created_at else None


def added(new: NewJob, *, job_id: str, seq: int, payload: Any, now: float, rank: float) -> Job:
    """The job new makes when a store adds it as job_id at seq and rank,
    holding payload (new's, as the store keeps it: a copy, not the caller's
    object)."""
    return Job(
        id=job_id,
        queue=new.queue,
        seq=seq,
        payload=payload,
        priority=new.priority,
        state=JobState.AVAILABLE,
        max_attempts=new.max_attempts,
        attempt=0,
        failures=0,
        created_at=now,
        run_at=new.run_at,
        lease_owner="",
        lease_until=None,
        result=None,
        error="",
        finished_at=None,
        request_id=new.request_id,
        fingerprint=new.fingerprint,
        attempt_timeout=new.attempt_timeout,
        started_at=None,
        review=None,
        trace=new.trace,
        fairness_key=new.fairness_key,
        rank=rank,
        ready_at=ready_at(new, now),
    )


def ready_at(new: NewJob, now: float) -> float:
    """When new, submitted at now, is due: what aging counts from."""
    return now if new.run_at is None or new.run_at < now else new.run_at


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's claim on a job: its outcome is written only with this token."""

    job: Job
    #: The attempt this claim started (the job's attempt when it was claimed).
    token: int
    #: The claim took the job from a worker whose lease had expired (presumed dead).
    taken_over: bool = False

    @property
    def id(self) -> str:
        return self.job.id


@dataclass(frozen=True, slots=True)
class Submitted:
    job: Job
    #: False when the request_id was seen before and this is the job it made then.
    created: bool


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """A queue's jobs counted exactly, at one moment."""

    #: Jobs per (state, priority); a pair that is absent counts 0.
    by_state_priority: dict[tuple[JobState, int], int]
    #: created_at of the oldest AVAILABLE job; None when none is.
    oldest_available: float | None
    #: started_at of the attempt running longest; None when none runs.
    earliest_started: float | None
    #: AVAILABLE jobs of the busiest fairness keys (fairness.busiest), most first.
    busiest_keys: tuple[tuple[str, int], ...] = ()

    def count(self, state: JobState) -> int:
        return sum(n for (s, _), n in self.by_state_priority.items() if s is state)

    def by_state(self) -> dict[JobState, int]:
        """Every state, with its count."""
        return {state: self.count(state) for state in JobState}

    def ahead_of(self, priority: int) -> int:
        """AVAILABLE jobs a new job of priority waits behind: those of its
        priority or higher."""
        return sum(
            n
            for (s, p), n in self.by_state_priority.items()
            if s is JobState.AVAILABLE and p >= priority
        )


def counts_from_groups(
    groups: list[tuple[Any, ...]], busiest_keys: tuple[tuple[str, int], ...] = ()
) -> QueueCounts:
    """QueueCounts from rows of (state, priority, count, min created_at, min
    started_at), one per group: what a store's GROUP BY state, priority reads."""
    available = [row[3] for row in groups if row[0] == JobState.AVAILABLE.value]
    running = [row[4] for row in groups if row[0] == JobState.RUNNING.value and row[4]]
    return QueueCounts(
        {(JobState(state), priority): count for state, priority, count, _, _ in groups},
        min(available, default=None),
        min(running, default=None),
        busiest_keys,
    )


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    #: The seq to list after for the next page; None when this page is the last.
    next_after: int | None
