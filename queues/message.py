"""The message queue's data: priorities, statuses, messages, outcomes, the
handler that produces them and the answer to a submission."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")


class Priority(IntEnum):
    """Higher values are served first."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    URGENT = 4


class MessageStatus(StrEnum):
    #: Waiting for a free worker, or waiting out a retry backoff (next_attempt_at set).
    PENDING = "pending"
    #: A worker (or an inline run) is running an attempt.
    PROCESSING = "processing"
    #: Processed; the result waits for a human decision.
    AWAITING_REVIEW = "awaiting_review"
    #: Processed (and approved, if it needed review).
    COMPLETED = "completed"
    #: Every allowed attempt failed; error_message holds the last error.
    FAILED = "failed"
    #: Cancelled before it finished.
    CANCELLED = "cancelled"
    #: Refused by a human reviewer.
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def is_unfinished(self) -> bool:
        """Counts against the queue's max_size: work the queue still has to do."""
        return self is MessageStatus.PENDING or self is MessageStatus.PROCESSING


_FINAL = frozenset(
    {
        MessageStatus.COMPLETED,
        MessageStatus.FAILED,
        MessageStatus.CANCELLED,
        MessageStatus.REJECTED,
    }
)


class ReviewDecision(StrEnum):
    #: The result stands: the message becomes COMPLETED.
    APPROVE = "approve"
    #: The result is refused: the message becomes REJECTED.
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Review:
    decision: ReviewDecision
    reviewer: str
    note: str
    reviewed_at: float


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R]):
    """What a successful attempt produced."""

    result: R
    #: Why a human must review the result before it counts; "" when none must.
    review_reason: str = ""


@dataclass(slots=True)
class Message(Generic[P, R]):
    """One queued item and everything that has happened to it.

    Read from the store's job (store_queue.py) or an earlier release's journal
    (message_records.py). Times are epoch seconds from the queue's clock.
    """

    id: str
    #: Position in creation order: FIFO within a priority, and the paging cursor.
    seq: int
    payload: P
    priority: Priority
    status: MessageStatus
    created_at: float
    max_retries: int
    attempt_timeout: float
    request_id: str = ""
    started_at: float | None = None
    completed_at: float | None = None
    error_message: str = ""
    #: Attempts that failed or timed out since the message was created or redriven.
    retry_count: int = 0
    next_attempt_at: float | None = None
    result: R | None = None
    review_reason: str = ""
    review: Review | None = None
    dead_lettered: bool = False
    fairness_key: str = ""
    #: The priority it is served at now: with aging, higher than priority for
    #: a message that has waited (queues/core/fairness.py).
    effective_priority: Priority | None = None
    #: The time it was scheduled for; None if it was due when submitted.
    scheduled_for: float | None = None


#: What the queue runs for each attempt: a payload in, an Outcome out.
Handler = Callable[[P], Awaitable[Outcome[R]]]


@dataclass(frozen=True, slots=True)
class Submitted(Generic[P, R]):
    """The answer to a submission."""

    message: Message[P, R]
    #: Messages ahead of this one when it was queued (0 = next).
    position: int
    #: Estimated seconds until it will have been processed.
    estimated_seconds: float
    #: True when a repeated request_id returned an earlier submission.
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class NewMessage(Generic[P]):
    """One submission of a batch (submit_many): submit()'s arguments."""

    payload: P
    priority: Priority
    request_id: str = ""
    max_retries: int | None = None
    attempt_timeout: float | None = None
    #: Whose work it is: within a priority, the queue serves keys in turn.
    fairness_key: str = ""
    #: The key's share of the turns (positive; 1 for an equal share).
    fairness_weight: float = 1.0
    #: Not processed before this time (epoch seconds); None for at once.
    run_at: float | None = None
    #: Or not before this many seconds after the queue accepts it.
    delay: float | None = None


def submission_fingerprint(encoded_payload: Any, item: NewMessage[Any]) -> str:
    """Equal for equal submissions, in every process and the next: what tells a
    repeated request_id from one reused for a different submission."""
    said: list[Any] = [encoded_payload, int(item.priority), item.max_retries, item.attempt_timeout]
    # Only when set, so that the fingerprints of submissions made before these
    # fields existed still match their repeats. Not the schedule: a retry of a
    # request with a delay has another run_at, and is still the same request.
    if item.fairness_key or item.fairness_weight != 1.0:
        said += [item.fairness_key, item.fairness_weight]
    canonical = json.dumps(
        said,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
