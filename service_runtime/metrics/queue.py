"""Queue metrics: the depth, ages and sizes a queue's stats answer (set from
them at each scrape, so /metrics and GetStats agree), and the attempts its
workers ran (counted as they end)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from queues.core.attempts import AttemptEnded, Outcome
from queues.message_stats import QueueStats

# Queue waits run from milliseconds (an idle queue) to hours (a backlog).
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
PROCESSING_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """A queue's stats as the gauges show them."""

    #: Unfinished work per (status, priority name): pending and processing.
    depth: Mapping[tuple[str, str], int]
    #: Every status's count, finished ones included.
    by_status: Mapping[str, int]
    max_size: int
    #: Seconds the oldest pending item has waited; 0 when none waits.
    oldest_pending_age: float
    longest_processing: float
    dead_letters: int
    workers: int


@dataclass(frozen=True, slots=True)
class _AttemptChildren:
    """One queue's label children of the attempt families."""

    attempts: dict[Outcome, Counter]
    retries: Counter
    dead_lettered: Counter
    wait: Histogram
    processing: Histogram
    takeovers: Counter


class QueueMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        queue = ("queue",)
        self._depth = Gauge(
            "quoteflow_queue_depth",
            "Unfinished items by status (pending, processing) and priority.",
            ("queue", "status", "priority"),
            registry=registry,
        )
        self._by_status = Gauge(
            "quoteflow_queue_messages",
            "Items held, by status, finished ones included until retention removes them.",
            ("queue", "status"),
            registry=registry,
        )
        self._max_size = Gauge(
            "quoteflow_queue_max_size",
            "The most unfinished items the queue accepts.",
            queue,
            registry=registry,
        )
        self._oldest = Gauge(
            "quoteflow_queue_oldest_pending_age_seconds",
            "How long the oldest pending item has waited; 0 when none waits.",
            queue,
            registry=registry,
        )
        self._longest = Gauge(
            "quoteflow_queue_longest_processing_seconds",
            "How long the longest-running attempt has run; 0 when none runs.",
            queue,
            registry=registry,
        )
        self._dead_letters = Gauge(
            "quoteflow_queue_dead_letters",
            "Items in the dead-letter queue.",
            queue,
            registry=registry,
        )
        self._workers = Gauge(
            "quoteflow_queue_workers", "Attempts run at once, at most.", queue, registry=registry
        )
        self._attempts = Counter(
            "quoteflow_queue_attempts",
            "Attempts run by this process, by outcome.",
            ("queue", "outcome"),
            registry=registry,
        )
        self._retries = Counter(
            "quoteflow_queue_retries",
            "Failed attempts retried after a backoff.",
            queue,
            registry=registry,
        )
        self._dead_lettered = Counter(
            "quoteflow_queue_dead_lettered",
            "Items moved to the dead-letter queue by their last allowed failure.",
            queue,
            registry=registry,
        )
        self._wait = Histogram(
            "quoteflow_queue_wait_seconds",
            "From submission to the first attempt's claim.",
            queue,
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._processing = Histogram(
            "quoteflow_queue_processing_seconds",
            "How long each attempt ran.",
            queue,
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self._takeovers = Counter(
            "quoteflow_queue_lease_takeovers",
            "Claims that took an item from a worker whose lease had expired (shared store).",
            queue,
            registry=registry,
        )
        self._children: dict[str, _AttemptChildren] = {}

    def observe(self, ended: AttemptEnded) -> None:
        """An AttemptObserver: counts an attempt of any queue."""
        children = self._children.get(ended.queue)
        if children is None:
            children = self._children[ended.queue] = self._children_of(ended.queue)
        children.attempts[ended.outcome].inc()
        children.processing.observe(ended.ran)
        if ended.waited is not None:
            children.wait.observe(ended.waited)
        if ended.retried:
            children.retries.inc()
        if ended.dead_lettered:
            children.dead_lettered.inc()
        if ended.taken_over:
            children.takeovers.inc()

    def _children_of(self, queue: str) -> _AttemptChildren:
        return _AttemptChildren(
            attempts={outcome: self._attempts.labels(queue, outcome.value) for outcome in Outcome},
            retries=self._retries.labels(queue),
            dead_lettered=self._dead_lettered.labels(queue),
            wait=self._wait.labels(queue),
            processing=self._processing.labels(queue),
            takeovers=self._takeovers.labels(queue),
        )

    def show(self, queue: str, snapshot: QueueSnapshot) -> None:
        """Set queue's gauges to snapshot."""
        for (status, priority), count in snapshot.depth.items():
            self._depth.labels(queue, status, priority).set(count)
        for status, count in snapshot.by_status.items():
            self._by_status.labels(queue, status).set(count)
        self._max_size.labels(queue).set(snapshot.max_size)
        self._oldest.labels(queue).set(snapshot.oldest_pending_age)
        self._longest.labels(queue).set(snapshot.longest_processing)
        self._dead_letters.labels(queue).set(snapshot.dead_letters)
        self._workers.labels(queue).set(snapshot.workers)


def message_queue_snapshot(stats: QueueStats, now: float) -> QueueSnapshot:
    """The gauges' view of a message queue's stats (StoreMessageQueue.stats)."""
    depth: dict[tuple[str, str], int] = {}
    for counts in stats.by_priority:
        depth["pending", counts.priority.name] = counts.pending
        depth["processing", counts.priority.name] = counts.processing
    oldest = stats.oldest_pending
    return QueueSnapshot(
        depth=depth,
        by_status={
            "pending": stats.pending,
            "processing": stats.processing,
            "awaiting_review": stats.awaiting_review,
            "completed": stats.completed,
            "failed": stats.failed,
            "cancelled": stats.cancelled,
            "rejected": stats.rejected,
        },
        max_size=stats.max_size,
        oldest_pending_age=0.0 if oldest is None else max(0.0, now - oldest),
        longest_processing=stats.longest_processing_seconds,
        dead_letters=stats.dead_letters,
        workers=stats.workers,
    )
