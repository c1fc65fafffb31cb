"""A bounded priority message queue worked by a pool of asyncio workers.

Ordering: URGENT > HIGH > NORMAL > LOW, FIFO (creation order) within a
priority. A worker takes the best ready message only once it is free, so
nothing is claimed ahead of time: a HIGH message submitted while every worker
is busy still goes before the NORMALs that were waiting.

Each attempt runs as its own task, cut at the message's attempt_timeout. A
failed or timed-out attempt adds one to retry_count; while retries remain the
message waits out a backoff as PENDING (holding no worker), then is ready
again. A message gets 1 + max_retries attempts; after the last it is FAILED
and dead-lettered until redriven.

Every method that changes state is synchronous (it never awaits), so each one
is atomic with respect to the others on the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic

from queues.backoff import Backoff
from queues.errors import (
    ClosedError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.message import (
    Message,
    MessageStatus,
    Outcome,
    P,
    Priority,
    R,
    Review,
    ReviewDecision,
)
from queues.message_stats import MessageCounters, QueueStats
from queues.state_watch import StateWatch

log = logging.getLogger(__name__)

Processor = Callable[[P], Awaitable[Outcome[R]]]

# Until an attempt has been timed, estimates assume this many seconds each.
_INITIAL_ATTEMPT_ESTIMATE = 1.0
# Weight of the newest attempt in the moving average of attempt durations.
_EWMA_WEIGHT = 0.2
# Shortest retry hint given to a client refused by a full queue, in seconds.
_MIN_RETRY_AFTER = 0.5


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


@dataclass(slots=True)
class _RequestRecord:
    message_id: str
    fingerprint: Hashable
    position: int
    estimated_seconds: float


class MessageQueue(Generic[P, R]):
    """The queue. Use `async with MessageQueue(...)` or start()/close()."""

    def __init__(
        self,
        processor: Processor[P, R],
        *,
        workers: int = 4,
        max_size: int = 1000,
        max_retries: int = 3,
        attempt_timeout: float = 300.0,
        retention: float = 86_400.0,
        sweep_interval: float = 60.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1; got {workers}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1; got {max_size}")
        if max_retries < 0 or attempt_timeout <= 0 or retention < 0 or sweep_interval <= 0:
            raise ValueError(
                "max_retries and retention must not be negative; "
                "attempt_timeout and sweep_interval must be positive"
            )
        self._processor = processor
        self.workers = workers
        self.max_size = max_size
        self.max_retries = max_retries
        self.attempt_timeout = attempt_timeout
        self.retention = retention
        self._sweep_interval = sweep_interval
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._new_id = new_id

        self._messages: dict[str, Message[P, R]] = {}
        self._seq = itertools.count(1)
        # Creation-order index for paging; may hold seqs of removed messages
        # until the next compaction.
        self._seqs: list[int] = []
        self._by_seq: dict[int, Message[P, R]] = {}
        self._ready: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._retry_timers: dict[str, asyncio.TimerHandle] = {}
        self._attempts: dict[str, asyncio.Task[Outcome[R]]] = {}
        # (completed_at, id) in the order messages became final: the sweep pops
        # from the left while entries are older than the retention period.
        self._finished: deque[tuple[float, str]] = deque()
        self._requests: dict[str, _RequestRecord] = {}
        self._watch: StateWatch[Message[P, R]] = StateWatch(lambda m: m.status.is_final)
        self._counters = MessageCounters(self._is_pending)
        self._attempt_estimate = _INITIAL_ATTEMPT_ESTIMATE

        self._worker_tasks: list[asyncio.Task[None]] = []
        self._idle_workers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and the retention sweep."""
        if self._worker_tasks:
            return
        self._worker_tasks = [
            asyncio.create_task(self._work(), name=f"message-queue-worker-{n}")
            for n in range(self.workers)
        ]
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="message-queue-sweep")

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting work, let running attempts finish for up to `grace`
        seconds (None: wait for them), then hand unfinished attempts back to
        PENDING. Nothing accepted is dropped: pending messages stay pending."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for handle in self._retry_timers.values():
            handle.cancel()
        self._retry_timers.clear()
        for worker in self._idle_workers:
            worker.cancel()
        running = list(self._attempts.values())
        if running and grace != 0:
            await asyncio.wait(running, timeout=grace)
        for attempt in self._attempts.values():
            attempt.cancel()
        await asyncio.gather(
            *self._worker_tasks, *([self._sweeper] if self._sweeper else []), return_exceptions=True
        )
        self._worker_tasks = []
        self._sweeper = None

    async def __aenter__(self) -> MessageQueue[P, R]:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- commands --------------------------------------------------------------

    def submit(
        self,
        payload: P,
        *,
        priority: Priority,
        request_id: str = "",
        max_retries: int | None = None,
        attempt_timeout: float | None = None,
    ) -> Submitted[P, R]:
        """Queue a message and answer at once.

        Raises QueueFullError when max_size messages are unfinished, ClosedError
        after close(), and RequestConflictError when request_id was used for a
        different submission. A repeated request_id with the same submission
        returns the first answer, with the message as it is now.
        """
        fingerprint = (payload, priority, max_retries, attempt_timeout)
        if request_id:
            earlier = self._earlier_request(request_id, fingerprint)
            if earlier is not None:
                return earlier
        self._check_capacity()
        position = sum(self._counters.pending(p) for p in Priority if p >= priority)
        message = self._create(
            payload, priority, MessageStatus.PENDING, request_id, max_retries, attempt_timeout
        )
        self._make_ready(message)
        estimate = self._estimate(position)
        if request_id:
            self._requests[request_id] = _RequestRecord(message.id, fingerprint, position, estimate)
        return Submitted(self._snapshot(message), position, estimate)

    async def run_inline(
        self,
        payload: P,
        *,
        priority: Priority,
        attempt_timeout: float | None = None,
    ) -> Message[P, R]:
        """Process a message in the caller's task, bypassing the queue, and
        return it after its one attempt: COMPLETED, AWAITING_REVIEW, FAILED
        (not dead-lettered: the caller is there to retry) or CANCELLED."""
        self._check_capacity()
        message = self._create(payload, priority, MessageStatus.PROCESSING, "", 0, attempt_timeout)
        try:
            await self._attempt(message, queued=False)
        except asyncio.CancelledError:
            if message.status is MessageStatus.PROCESSING:
                message.error_message = "the caller went away before the attempt ended"
                self._finish(message, MessageStatus.CANCELLED)
            raise
        return self._snapshot(message)

    def cancel(self, message_id: str) -> Message[P, R]:
        """Cancel a PENDING, PROCESSING or AWAITING_REVIEW message."""
        message = self._get(message_id)
        if message.status.is_final:
            raise InvalidStateError("message", message_id, message.status.value, "cancel")
        timer = self._retry_timers.pop(message_id, None)
        if timer is not None:
            timer.cancel()
        message.next_attempt_at = None
        attempt = self._attempts.get(message_id)
        self._finish(message, MessageStatus.CANCELLED)
        if attempt is not None:
            attempt.cancel()
        return self._snapshot(message)

    def redrive(self, message_id: str) -> Message[P, R]:
        """Put a dead-lettered message back in the queue with its retries reset."""
        message = self._get(message_id)
        if not message.dead_lettered:
            raise InvalidStateError("message", message_id, self._describe(message), "redrive")
        self._check_capacity()
        message.dead_lettered = False
        self._counters.dead_letters -= 1
        message.retry_count = 0
        message.error_message = ""
        message.completed_at = None
        self._set_status(message, MessageStatus.PENDING)
        self._make_ready(message)
        self._publish(message)
        return self._snapshot(message)

    def review(
        self, message_id: str, decision: ReviewDecision, reviewer: str, note: str = ""
    ) -> Message[P, R]:
        """Record a human decision on a message AWAITING_REVIEW."""
        message = self._get(message_id)
        if message.status is not MessageStatus.AWAITING_REVIEW:
            raise InvalidStateError("message", message_id, message.status.value, "review")
        message.review = Review(decision, reviewer, note, self._clock())
        final = (
            MessageStatus.COMPLETED
            if decision is ReviewDecision.APPROVE
            else MessageStatus.REJECTED
        )
        self._finish(message, final)
        return self._snapshot(message)

    def sweep_expired(self) -> int:
        """Remove messages that have been final for longer than the retention
        period; returns how many were removed."""
        cutoff = self._clock() - self.retention
        removed = 0
        while self._finished and self._finished[0][0] <= cutoff:
            completed_at, message_id = self._finished.popleft()
            message = self._messages.get(message_id)
            # A redriven message left an entry behind when it first finished.
            if (
                message is None
                or message.completed_at != completed_at
                or not message.status.is_final
            ):
                continue
            self._remove(message)
            removed += 1
        if len(self._seqs) > 2 * len(self._by_seq) + 64:
            self._seqs = [seq for seq in self._seqs if seq in self._by_seq]
        return removed

    # -- queries ---------------------------------------------------------------

    def get(self, message_id: str) -> Message[P, R]:
        """A snapshot of the message; NotFoundError if unknown or expired."""
        return self._snapshot(self._get(message_id))

    async def watch(self, message_id: str) -> AsyncIterator[Message[P, R]]:
        """Yield the message as it is now, then after every change, ending
        after a final state. NotFoundError (from the first step) if unknown."""
        async for state in self._watch.follow(message_id, self._get(message_id)):
            yield state

    def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        priority: Priority | None = None,
        dead_lettered_only: bool = False,
        after_seq: int = 0,
        limit: int = 50,
    ) -> tuple[list[Message[P, R]], int | None]:
        """Messages in creation order after `after_seq`, filtered; returns the
        page and the cursor for the next page (None on the last page)."""
        page: list[Message[P, R]] = []
        start = bisect.bisect_right(self._seqs, after_seq)
        for seq in itertools.islice(self._seqs, start, None):
            message = self._by_seq.get(seq)
            if message is None:
                continue
            if status is not None and message.status is not status:
                continue
            if priority is not None and message.priority is not priority:
                continue
            if dead_lettered_only and not message.dead_lettered:
                continue
            if len(page) == limit:
                return page, page[-1].seq
            page.append(self._snapshot(message))
        return page, None

    def stats(self) -> QueueStats:
        now = self._clock()
        started = [
            m.started_at
            for m in (self._messages[i] for i in self._attempts)
            if m.started_at is not None
        ]
        return self._counters.snapshot(
            max_size=self.max_size,
            workers=self.workers,
            oldest_pending=self._counters.oldest_pending(),
            longest_processing_seconds=max((now - s for s in started), default=0.0),
        )

    # -- internals -------------------------------------------------------------

    def _create(
        self,
        payload: P,
        priority: Priority,
        status: MessageStatus,
        request_id: str,
        max_retries: int | None,
        attempt_timeout: float | None,
    ) -> Message[P, R]:
        seq = next(self._seq)
        message: Message[P, R] = Message(
            id=self._new_id(),
            seq=seq,
            payload=payload,
            priority=priority,
            status=status,
            created_at=self._clock(),
            max_retries=self.max_retries if max_retries is None else max_retries,
            attempt_timeout=attempt_timeout or self.attempt_timeout,
            request_id=request_id,
        )
        self._messages[message.id] = message
        self._by_seq[seq] = message
        self._seqs.append(seq)
        self._counters.moved(priority, None, status)
        if status is MessageStatus.PENDING:
            self._counters.entered_pending(message.created_at, seq, message.id)
        return message

    def _remove(self, message: Message[P, R]) -> None:
        del self._messages[message.id]
        del self._by_seq[message.seq]
        self._counters.moved(message.priority, message.status, None)
        if message.dead_lettered:
            self._counters.dead_letters -= 1
        if message.request_id:
            self._requests.pop(message.request_id, None)

    def _get(self, message_id: str) -> Message[P, R]:
        message = self._messages.get(message_id)
        if message is None:
            raise NotFoundError("message", message_id)
        return message

    def _is_pending(self, message_id: str) -> bool:
        message = self._messages.get(message_id)
        return message is not None and message.status is MessageStatus.PENDING

    def _earlier_request(self, request_id: str, fingerprint: Hashable) -> Submitted[P, R] | None:
        record = self._requests.get(request_id)
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise RequestConflictError(request_id)
        message = self._messages[record.message_id]
        return Submitted(
            self._snapshot(message), record.position, record.estimated_seconds, duplicate=True
        )

    def _check_capacity(self) -> None:
        if self._closed:
            raise ClosedError("message queue")
        if self._counters.unfinished >= self.max_size:
            retry_after = max(_MIN_RETRY_AFTER, self._attempt_estimate / self.workers)
            raise QueueFullError(self.max_size, retry_after)

    def _estimate(self, position: int) -> float:
        """Seconds until a message with `position` messages ahead is processed."""
        rounds = position // self.workers + 1
        return rounds * self._attempt_estimate

    def _set_status(self, message: Message[P, R], status: MessageStatus) -> None:
        self._counters.moved(message.priority, message.status, status)
        message.status = status
        if status is MessageStatus.PENDING:
            self._counters.entered_pending(message.created_at, message.seq, message.id)

    def _finish(self, message: Message[P, R], status: MessageStatus) -> None:
        """Move to a final status (or AWAITING_REVIEW) and tell the watchers."""
        message.completed_at = self._clock()
        self._set_status(message, status)
        if status.is_final:
            self._finished.append((message.completed_at, message.id))
        self._publish(message)

    def _make_ready(self, message: Message[P, R]) -> None:
        self._ready.put_nowait((-message.priority, message.seq, message.id))

    def _schedule_retry(self, message: Message[P, R]) -> None:
        delay = self._backoff.delay(message.retry_count)
        message.next_attempt_at = self._clock() + delay
        self._retry_timers[message.id] = asyncio.get_running_loop().call_later(
            delay, self._retry_due, message.id
        )

    def _retry_due(self, message_id: str) -> None:
        self._retry_timers.pop(message_id, None)
        message = self._messages.get(message_id)
        if message is not None and message.status is MessageStatus.PENDING:
            self._make_ready(message)

    def _publish(self, message: Message[P, R]) -> None:
        self._watch.publish(message.id, message)

    @staticmethod
    def _snapshot(message: Message[P, R]) -> Message[P, R]:
        return copy.copy(message)

    @staticmethod
    def _describe(message: Message[P, R]) -> str:
        if message.status is MessageStatus.FAILED:
            return "failed but not dead-lettered"
        return message.status.value

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while not self._closed:
            self._idle_workers.add(worker)
            try:
                _, _, message_id = await self._ready.get()
            finally:
                self._idle_workers.discard(worker)
            message = self._messages.get(message_id)
            # Entries of messages cancelled while they waited are skipped here.
            if message is None or message.status is not MessageStatus.PENDING:
                continue
            message.next_attempt_at = None
            self._set_status(message, MessageStatus.PROCESSING)
            self._publish(message)
            await self._attempt(message, queued=True)

    async def _attempt(self, message: Message[P, R], *, queued: bool) -> None:
        """Run one attempt of a PROCESSING message and record how it ended.

        `queued` messages came from the queue: they are retried and
        dead-lettered. Inline ones (run_inline) end FAILED at the first failure.
        """
        started_at = message.started_at = self._clock()
        attempt = asyncio.create_task(self._processor(message.payload))
        self._attempts[message.id] = attempt
        try:
            done, _ = await asyncio.wait({attempt}, timeout=message.attempt_timeout)
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            self._attempts.pop(message.id, None)
        if not done:
            attempt.cancel()
            await asyncio.wait({attempt})
        if message.status is not MessageStatus.PROCESSING:
            return  # cancelled through cancel(), which already recorded it
        if attempt.cancelled() and done:
            # Cancelled by close(): the attempt does not count.
            if queued:
                self._set_status(message, MessageStatus.PENDING)
                self._publish(message)
            else:
                self._fail(message, "interrupted: the service is shutting down", queued=False)
            return
        self._record_attempt_time(started_at)
        if not done:
            error = f"attempt timed out after {message.attempt_timeout:g}s"
            self._fail(message, error, queued=queued)
        elif (exc := attempt.exception()) is not None:
            self._fail(message, f"{type(exc).__name__}: {exc}", queued=queued)
        else:
            self._succeed(message, attempt.result())

    def _succeed(self, message: Message[P, R], outcome: Outcome[R]) -> None:
        message.result = outcome.result
        message.review_reason = outcome.review_reason
        message.error_message = ""
        self._finish(
            message,
            MessageStatus.AWAITING_REVIEW if outcome.review_reason else MessageStatus.COMPLETED,
        )

    def _fail(self, message: Message[P, R], error: str, *, queued: bool) -> None:
        message.retry_count += 1
        message.error_message = error
        if not queued:
            self._finish(message, MessageStatus.FAILED)
        elif message.retry_count > message.max_retries:
            message.dead_lettered = True
            self._counters.dead_letters += 1
            self._finish(message, MessageStatus.FAILED)
        else:
            self._set_status(message, MessageStatus.PENDING)
            # While closing, no timer is set: the retry waits for the next start.
            if not self._closed:
                self._schedule_retry(message)
            self._publish(message)

    def _record_attempt_time(self, started_at: float) -> None:
        elapsed = max(self._clock() - started_at, 0.0)
        self._attempt_estimate += _EWMA_WEIGHT * (elapsed - self._attempt_estimate)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            removed = self.sweep_expired()
            if removed:
                log.info("retention sweep removed %d messages", removed)
