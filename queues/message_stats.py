"""The quote queue's statistics, as StoreMessageQueue answers them from the
store's counts."""

from __future__ import annotations

from dataclasses import dataclass

from queues.message import Priority


@dataclass(frozen=True, slots=True)
class PriorityCounts:
    priority: Priority
    pending: int
    processing: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    processing: int
    awaiting_review: int
    completed: int
    failed: int
    cancelled: int
    rejected: int
    dead_letters: int
    max_size: int
    workers: int
    #: created_at of the oldest PENDING message; None when nothing is pending.
    oldest_pending: float | None
    #: How long the longest-running attempt has run; 0.0 when none runs.
    longest_processing_seconds: float
    by_priority: tuple[PriorityCounts, ...]
    #: PENDING messages of the busiest fairness keys, most first, at most
    #: queues.core.fairness.BUSIEST_KEYS of them.
    busiest_keys: tuple[tuple[str, int], ...] = ()
