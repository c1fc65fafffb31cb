"""The core's rules as plain functions: which jobs a claim may take (which
it takes first is fairness.py's), which states an operation may leave, and
what a failed attempt becomes. Every store applies them (in Python or in its
SQL), and tests check them without a store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from queues.backoff import Backoff
from queues.core.jobs import Job, JobState

#: The states each operation may change a job from, and the state it leaves.
#: (claim is separate: it also takes a RUNNING job whose lease expired.)
TRANSITIONS: dict[str, tuple[frozenset[JobState], JobState]] = {
    "cancel": (
        frozenset({JobState.AVAILABLE, JobState.RUNNING, JobState.HELD}),
        JobState.CANCELLED,
    ),
    "redrive": (frozenset({JobState.FAILED}), JobState.AVAILABLE),
    "approve": (frozenset({JobState.HELD}), JobState.COMPLETED),
    "reject": (frozenset({JobState.HELD}), JobState.REJECTED),
}


def is_claimable(job: Job, now: float) -> bool:
    """Whether a claim at `now` may take job: available and out of its backoff,
    or running under a lease that has expired (its worker is presumed dead)."""
    if job.state is JobState.AVAILABLE:
        return job.run_at is None or job.run_at <= now
    if job.state is JobState.RUNNING:
        return job.lease_until is not None and job.lease_until <= now
    return False


def holds(job: Job, token: int) -> bool:
    """Whether a claim with token may still write job's outcome: the job still
    runs the attempt that claim started. Writing needs no live lease: until
    another worker claims the job, the late outcome is still the only one."""
    return job.state is JobState.RUNNING and job.attempt == token


@dataclass(frozen=True, slots=True)
class RetryAt:
    """The failed attempt is followed by another, not before run_at."""

    run_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The failed attempt was the last allowed: the job fails for good."""


def after_failure(
    failures: int,
    max_attempts: int,
    backoff: Backoff,
    now: float,
    rand: Callable[[], float] | None = None,
) -> RetryAt | DeadLetter:
    """What an attempt's failure makes of its job, `failures` counting it."""
    if failures >= max_attempts:
        return DeadLetter()
    delay = backoff.delay(failures) if rand is None else backoff.delay(failures, rand)
    return RetryAt(now + delay)
