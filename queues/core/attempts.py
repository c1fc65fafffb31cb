"""What a worker tells an observer (a service's metrics) about each attempt it
ran: plain values, so the queue library depends on no metrics library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    #: Cut before it ended: its job was cancelled or taken over, or the worker stopped.
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    queue: str
    outcome: Outcome
    #: Seconds the handler ran.
    ran: float
    #: For a job's first attempt, the seconds from its submission to this
    #: claim; None for later attempts, whose wait is mostly their backoff.
    waited: float | None
    #: The failure is retried after a backoff.
    retried: bool = False
    #: The failure was the last allowed: the job goes to the dead-letter queue.
    dead_lettered: bool = False
    #: The claim took the job from a worker whose lease had expired.
    taken_over: bool = False


#: Called once per attempt, on the worker's event loop; it must not block.
AttemptObserver = Callable[[AttemptEnded], None]
