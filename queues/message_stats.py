"""Exact queue statistics, kept up to date as messages change state.

Every status change goes through MessageCounters.moved, so a stats snapshot
is a read of counters: the same cost with ten messages or a million.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from queues.message import MessageStatus, Priority

# A lazily-cleaned heap may hold this many stale entries per live one before
# it is rebuilt, which keeps both memory and the amortised cost bounded.
_COMPACT_RATIO = 2


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


class MessageCounters:
    """Counts of held messages by (status, priority), plus the oldest pending one."""

    def __init__(self, is_pending: Callable[[str], bool]) -> None:
        self._is_pending = is_pending
        self._counts: Counter[tuple[MessageStatus, Priority]] = Counter()
        self._by_status: Counter[MessageStatus] = Counter()
        self.dead_letters = 0
        # (created_at, seq, id) of messages that entered PENDING; entries for
        # messages that left PENDING are dropped when they reach the top.
        self._pending_heap: list[tuple[float, int, str]] = []

    def moved(
        self,
        priority: Priority,
        old: MessageStatus | None,
        new: MessageStatus | None,
    ) -> None:
        """Record one message moving from `old` to `new` (None: not held)."""
        if old is not None:
            self._counts[(old, priority)] -= 1
            self._by_status[old] -= 1
        if new is not None:
            self._counts[(new, priority)] += 1
            self._by_status[new] += 1

    def entered_pending(self, created_at: float, seq: int, message_id: str) -> None:
        heapq.heappush(self._pending_heap, (created_at, seq, message_id))
        if len(self._pending_heap) > _COMPACT_RATIO * self.count(MessageStatus.PENDING) + 64:
            self._pending_heap = [e for e in self._pending_heap if self._is_pending(e[2])]
            heapq.heapify(self._pending_heap)

    def pending(self, priority: Priority) -> int:
        return self._counts[(MessageStatus.PENDING, priority)]

    def count(self, status: MessageStatus) -> int:
        return self._by_status[status]

    @property
    def unfinished(self) -> int:
        return self._by_status[MessageStatus.PENDING] + self._by_status[MessageStatus.PROCESSING]

    def oldest_pending(self) -> float | None:
        """created_at of the oldest PENDING message."""
        heap = self._pending_heap
        while heap and not self._is_pending(heap[0][2]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def snapshot(
        self,
        *,
        max_size: int,
        workers: int,
        oldest_pending: float | None,
        longest_processing_seconds: float,
    ) -> QueueStats:
        status = self._by_status
        return QueueStats(
            pending=status[MessageStatus.PENDING],
            processing=status[MessageStatus.PROCESSING],
            awaiting_review=status[MessageStatus.AWAITING_REVIEW],
            completed=status[MessageStatus.COMPLETED],
            failed=status[MessageStatus.FAILED],
            cancelled=status[MessageStatus.CANCELLED],
            rejected=status[MessageStatus.REJECTED],
            dead_letters=self.dead_letters,
            max_size=max_size,
            workers=workers,
            oldest_pending=oldest_pending,
            longest_processing_seconds=longest_processing_seconds,
            by_priority=tuple(
                PriorityCounts(
                    priority=p,
                    pending=self._counts[(MessageStatus.PENDING, p)],
                    processing=self._counts[(MessageStatus.PROCESSING, p)],
                )
                for p in Priority
            ),
        )
