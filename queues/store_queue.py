"""The message queue as a policy over the durable core: the store owns it.

Every message is a job of one JobStore queue (queues/core), so any number of
processes over one store serve one queue: any of them accepts submissions,
any of them with workers claims them (priority, then FIFO, under a lease),
and every read (get, list, stats, watch) answers from the store. What a
process holds in memory is its claims and its watchers, never finished work.

A message maps onto a job as follows: the job's payload is {"p": the encoded
payload}, plus "inline": true for a RunQuote; a successful attempt's result is
{"r": the encoded result, "why": the review reason}, held for review when the
reason is not empty; a review's record is [decision, reviewer, note, at].
Retries, backoff and the dead-letter queue are the core's worker applying
rules.after_failure; 1 + max_retries attempts are allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic

from queues.backoff import Backoff
from queues.codec import Codec, JsonCodec
from queues.core.attempts import AttemptObserver
from queues.core.changes import JobChange, Subscription
from queues.core.coalescing import Coalescing
from queues.core.fairness import NO_POLICY, ClaimPolicy, effective_priority
from queues.core.job_store import JobStore
from queues.core.jobs import Job, JobState, NewJob, QueueCounts
from queues.core.rate_limits import RateLimit
from queues.core.worker import Done, Worker, WorkerSettings
from queues.errors import (
    BatchRequestConflictError,
    ClosedError,
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.ids import random_id
from queues.message import (
    Handler,
    Message,
    MessageStatus,
    NewMessage,
    P,
    Priority,
    R,
    Review,
    ReviewDecision,
    Submitted,
    submission_fingerprint,
)
from queues.message_stats import PriorityCounts, QueueStats
from queues.storage import StoreError

log = logging.getLogger(__name__)

_STATUS = {
    JobState.AVAILABLE: MessageStatus.PENDING,
    JobState.RUNNING: MessageStatus.PROCESSING,
    JobState.HELD: MessageStatus.AWAITING_REVIEW,
    JobState.COMPLETED: MessageStatus.COMPLETED,
    JobState.FAILED: MessageStatus.FAILED,
    JobState.CANCELLED: MessageStatus.CANCELLED,
    JobState.REJECTED: MessageStatus.REJECTED,
}
_STATE = {status: state for state, status in _STATUS.items()}
# Until an attempt has been timed, estimates assume this many seconds each.
_INITIAL_ATTEMPT_ESTIMATE = 1.0
# Weight of the newest attempt in the moving average of attempt durations.
_EWMA_WEIGHT = 0.2
# Shortest retry hint given to a client refused by a full queue, in seconds.
_MIN_RETRY_AFTER = 0.5
# The most jobs a listing reads from the store at once while it filters.
_LIST_CHUNK = 200


class StoreMessageQueue(Generic[P, R]):
    def __init__(
        self,
        handler: Handler[P, R],
        *,
        store: JobStore,
        queue: str = "messages",
        workers: int = 4,
        max_size: int = 1000,
        max_retries: int = 3,
        attempt_timeout: float = 300.0,
        retention: float = 86_400.0,
        sweep_interval: float = 60.0,
        backoff: Backoff | None = None,
        lease: float = 30.0,
        heartbeat: float = 10.0,
        payload_codec: Codec[P] | None = None,
        result_codec: Codec[R] | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        observer: AttemptObserver | None = None,
        policy: ClaimPolicy = NO_POLICY,
    ) -> None:
        """policy: aging and the cap per fairness key; its top priority is
        taken to be URGENT's."""
        if workers < 0:
            raise ValueError(f"workers must not be negative; got {workers}")
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1; got {max_size}")
        if max_retries < 0 or attempt_timeout <= 0 or retention < 0 or sweep_interval <= 0:
            raise ValueError(
                "max_retries and retention must not be negative; "
                "attempt_timeout and sweep_interval must be positive"
            )
        self._handler = handler
        self._store = store
        self._queue = queue
        self.workers = workers
        self.max_size = max_size
        self.max_retries = max_retries
        self.attempt_timeout = attempt_timeout
        self.retention = retention
        self._sweep_interval = sweep_interval
        self._payloads: Codec[P] = payload_codec or JsonCodec()
        self._results: Codec[R] = result_codec or JsonCodec()
        self._clock = clock
        self._policy = policy
        self._settings = WorkerSettings(
            concurrency=workers,
            lease=lease,
            heartbeat=heartbeat,
            backoff=backoff or Backoff(),
            attempt_timeout=attempt_timeout,
            observer=observer,
            policy=self._policy,
        )
        self._owner = owner or random_id()
        # Claims and runs workers' attempts (none with workers=0), and keeps the
        # leases of inline runs too.
        self._worker = Worker(
            store, queue, self._run, owner=self._owner, settings=self._settings, clock=clock
        )
        self._running = False
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False
        self._attempt_estimate = _INITIAL_ATTEMPT_ESTIMATE
        # The counts a submission's queue position is read from: submissions
        # made while one read is in flight share the next, so a burst of them
        # reads the counts once per round trip rather than once per call.
        self._positions: Coalescing[None, QueueCounts] = Coalescing(self._read_counts)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start the workers (none with workers=0: this process only serves
        calls) and the retention sweep. The store is opened by the caller."""
        self._stopped = False
        if not self._running:
            await self._worker.start()
            self._running = True
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_periodically(), name="queue-sweep")

    async def stop(self, grace: float | None = None) -> None:
        """Accept no more submissions, let running attempts finish for up to
        grace seconds (none given: as long as they take), then cut them: their
        jobs run again, here or elsewhere, once their leases expire."""
        self._stopped = True
        if self._running:
            await self._worker.stop(self.attempt_timeout if grace is None else grace)
            self._running = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # -- commands --------------------------------------------------------------

    async def submit(
        self,
        payload: P,
        *,
        priority: Priority,
        request_id: str = "",
        max_retries: int | None = None,
        attempt_timeout: float | None = None,
        fairness_key: str = "",
        fairness_weight: float = 1.0,
        run_at: float | None = None,
        delay: float | None = None,
    ) -> Submitted[P, R]:
        """Queue a message (NewMessage says what each argument is); answers
        once the store holds it. Raises
        QueueFullError when max_size messages are unfinished, ClosedError after
        stop(), StoreError if the store could not take it (then nothing was
        queued), and RequestConflictError when request_id was used for a
        different submission. A repeated request_id with the same submission
        answers the first message, as it is now."""
        item = NewMessage(
            payload,
            priority,
            request_id,
            max_retries,
            attempt_timeout,
            fairness_key,
            fairness_weight,
            run_at,
            delay,
        )
        [submitted] = await self._submit([item])
        return submitted

    async def submit_many(self, items: Sequence[NewMessage[P]]) -> list[Submitted[P, R]]:
        """Queue every item, all or none, in one store operation; answers in
        items' order. Raises as submit() does, with BatchRequestConflictError
        naming the item, and ValueError when two items share a request_id."""
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            if item.request_id and item.request_id in seen:
                raise ValueError(f"item {index} repeats request_id {item.request_id!r}")
            seen[item.request_id] = index
        try:
            return await self._submit(items)
        except RequestConflictError as conflict:
            if type(conflict) is RequestConflictError and conflict.request_id in seen:
                raise BatchRequestConflictError(
                    conflict.request_id, seen[conflict.request_id]
                ) from None
            raise

    async def run_inline(
        self,
        payload: P,
        *,
        priority: Priority,
        attempt_timeout: float | None = None,
        fairness_key: str = "",
    ) -> Message[P, R]:
        """Process a message in the caller's task, bypassing the queue (busy
        workers do not delay it), and answer it after its one attempt:
        COMPLETED, AWAITING_REVIEW, FAILED (not dead-lettered: the caller is
        there to retry) or CANCELLED. It is in the store, claimed by this
        process, from the start, so it is listed and counted while it runs."""
        if self._stopped:
            raise ClosedError("message queue")
        item = NewMessage(payload, priority, "", 0, attempt_timeout, fairness_key)
        job = self._new_job(item, inline=True, now=self._clock())
        try:
            claim = await self._store.claim_new(
                job,
                owner=self._owner,
                lease=self._settings.lease,
                now=self._clock(),
                max_unfinished=self.max_size,
            )
        except QueueFullError:
            raise QueueFullError(self.max_size, self._retry_after()) from None
        with contextlib.suppress(LostClaimError):  # cancelled meanwhile: answered as it is
            await self._worker.run_claimed(claim)
        return await self.get(claim.id)

    async def cancel(self, message_id: str) -> Message[P, R]:
        """Cancel a PENDING, PROCESSING or AWAITING_REVIEW message."""
        with _as_message(message_id):
            return self._message(await self._store.cancel(message_id, now=self._clock()))

    async def redrive(self, message_id: str) -> Message[P, R]:
        """Put a dead-lettered message back in the queue with its retries reset."""
        message = await self.get(message_id)
        if not message.dead_lettered:
            raise InvalidStateError("message", message_id, _describe(message), "redrive")
        counts = await self._store.stats(self._queue)
        self._check_room(counts, 1)
        with _as_message(message_id):
            return self._message(await self._store.redrive(message_id, now=self._clock()))

    async def review(
        self, message_id: str, decision: ReviewDecision, reviewer: str, note: str = ""
    ) -> Message[P, R]:
        """Record a human decision on a message AWAITING_REVIEW."""
        now = self._clock()
        # The store names its operation approve or reject; the caller asked to review.
        with _as_message(message_id, "review"):
            job = await self._store.decide(
                message_id,
                approve=decision is ReviewDecision.APPROVE,
                review=[decision.value, reviewer, note, now],
                now=now,
            )
        return self._message(job)

    async def sweep_expired(self) -> int:
        """Remove messages final for longer than the retention period; answers
        how many. Any process may sweep: the store removes each message once.
        The periodic sweep runs it on one replica per interval (JobStore.lead)."""
        cutoff = self._clock() - self.retention
        removed = 0
        while swept := await self._store.sweep(self._queue, finished_before=cutoff, limit=500):
            removed += swept
        return removed

    # -- queries ---------------------------------------------------------------

    async def set_rate_limit(self, fairness_key: str, limit: RateLimit | None) -> None:
        """Limit how fast the messages of fairness_key start, on every queue
        over this store (rate_limits.py); None lifts the limit."""
        await self._store.set_rate_limit(self._queue, fairness_key, limit, now=self._clock())

    async def get(self, message_id: str) -> Message[P, R]:
        """The message as the store holds it; NotFoundError if unknown or expired."""
        with _as_message(message_id):
            return self._message(await self._store.get(message_id))

    async def watch(self, message_id: str) -> AsyncIterator[Message[P, R]]:
        """Yield the message as it is now, then after every change of its state
        (made by any process), ending after a final state. NotFoundError (from
        the first step) if unknown."""
        with self._store.subscribe(self._queue) as changes:
            # Read after subscribing: no change falls between the two.
            message = await self.get(message_id)
            yield message
            while not message.status.is_final:
                change = await _next_of(changes, message_id)
                if change is None:
                    continue
                current = await self.get(message_id)
                if (current.status, current.retry_count) != (message.status, message.retry_count):
                    yield current
                message = current

    async def watch_stats(self, *, every: float, refresh: float) -> AsyncIterator[QueueStats]:
        """Yield the stats now, then again after the queue changes (made by any
        process): at most one yield per `every` seconds however many changes
        there were, and one per `refresh` seconds when there were none."""
        loop = asyncio.get_running_loop()
        with self._store.subscribe(self._queue) as changes:
            while True:
                # Forgotten before the read: a change from here on is in the next.
                changes.clear()
                yielded = loop.time()
                yield await self.stats()
                await changes.next_within(refresh)
                # A burst of changes makes one answer, not one each.
                await asyncio.sleep(max(0.0, yielded + every - loop.time()))

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        priority: Priority | None = None,
        dead_lettered_only: bool = False,
        after_seq: int = 0,
        limit: int = 50,
    ) -> tuple[list[Message[P, R]], int | None]:
        """Messages in creation order after after_seq, filtered; answers the
        page and the cursor of the next page (None on the last page)."""
        states = None
        if status is not None:
            states = frozenset({_STATE[status]})
        if dead_lettered_only:
            states = (states or frozenset({JobState.FAILED})) & {JobState.FAILED}
        page: list[Message[P, R]] = []
        after = after_seq
        while True:
            chunk = await self._store.list(
                self._queue, states=states, after=after, limit=_LIST_CHUNK
            )
            for job in chunk.jobs:
                message = self._message(job)
                if priority is not None and message.priority is not priority:
                    continue
                if dead_lettered_only and not message.dead_lettered:
                    continue
                if len(page) == limit:
                    return page, page[-1].seq
                page.append(message)
            if chunk.next_after is None:
                return page, None
            after = chunk.next_after

    async def stats(self) -> QueueStats:
        counts = await self._store.stats(self._queue)
        by_state = counts.by_state()
        now = self._clock()
        return QueueStats(
            pending=by_state[JobState.AVAILABLE],
            processing=by_state[JobState.RUNNING],
            awaiting_review=by_state[JobState.HELD],
            completed=by_state[JobState.COMPLETED],
            failed=by_state[JobState.FAILED],
            cancelled=by_state[JobState.CANCELLED],
            rejected=by_state[JobState.REJECTED],
            # What redrive would take back: failed messages not run inline.
            dead_letters=await self._dead_letters(by_state[JobState.FAILED]),
            max_size=self.max_size,
            workers=self.workers,
            oldest_pending=counts.oldest_available,
            longest_processing_seconds=(
                0.0 if counts.earliest_started is None else max(0.0, now - counts.earliest_started)
            ),
            by_priority=tuple(
                PriorityCounts(
                    priority=p,
                    pending=counts.by_state_priority.get((JobState.AVAILABLE, p), 0),
                    processing=counts.by_state_priority.get((JobState.RUNNING, p), 0),
                )
                for p in Priority
            ),
            busiest_keys=counts.busiest_keys,
        )

    # -- the policy --------------------------------------------------------------

    async def _submit(
        self, items: Sequence[NewMessage[P]], *, inline: bool = False
    ) -> list[Submitted[P, R]]:
        if self._stopped:
            raise ClosedError("message queue")
        now = self._clock()
        jobs = [self._new_job(item, inline, now) for item in items]
        counts = await self._positions.call(None)
        try:
            submitted = await self._store.submit(jobs, now=now, max_unfinished=self.max_size)
        except QueueFullError:
            raise QueueFullError(self.max_size, self._retry_after()) from None
        answers = []
        queued: list[int] = []  # the priorities of the batch's new messages so far
        for each in submitted:
            message = self._message(each.job)
            priority = int(message.priority)
            # What waited ahead of it: before the batch, and the batch's earlier items.
            position = counts.ahead_of(priority) + sum(1 for p in queued if p >= priority)
            if each.created:
                queued.append(priority)
            answers.append(
                Submitted(message, position, self._estimate(position), duplicate=not each.created)
            )
        return answers

    async def _read_counts(self, callers: list[None]) -> list[QueueCounts]:
        counts = await self._store.stats(self._queue)
        return [counts] * len(callers)

    def _new_job(self, item: NewMessage[P], inline: bool, now: float) -> NewJob:
        retries = self.max_retries if item.max_retries is None else item.max_retries
        payload: dict[str, Any] = {"p": self._payloads.encode(item.payload)}
        if inline:
            payload["inline"] = True
        return NewJob(
            queue=self._queue,
            payload=payload,
            priority=int(item.priority),
            max_attempts=retries + 1,
            request_id=item.request_id,
            fingerprint=submission_fingerprint(self._payloads.encode(item.payload), item)
            if item.request_id
            else "",
            attempt_timeout=item.attempt_timeout or self.attempt_timeout,
            fairness_key=item.fairness_key,
            weight=item.fairness_weight,
            run_at=now + item.delay if item.delay is not None else item.run_at,
        )

    async def _run(self, job: Job) -> Done:
        """One attempt, as the core's worker runs it."""
        started = self._clock()
        try:
            outcome = await self._handler(self._payloads.decode(job.payload["p"]))
        finally:
            elapsed = max(self._clock() - started, 0.0)
            self._attempt_estimate += _EWMA_WEIGHT * (elapsed - self._attempt_estimate)
        result = {"r": self._results.encode(outcome.result), "why": outcome.review_reason}
        return Done(result, hold=bool(outcome.review_reason))

    def _message(self, job: Job) -> Message[P, R]:
        result = job.result
        review = job.review
        inline = bool(job.payload.get("inline"))
        return Message(
            id=job.id,
            seq=job.seq,
            payload=self._payloads.decode(job.payload["p"]),
            priority=Priority(job.priority),
            status=_STATUS[job.state],
            created_at=job.created_at,
            max_retries=job.max_attempts - 1,
            attempt_timeout=job.attempt_timeout or self.attempt_timeout,
            request_id=job.request_id,
            started_at=job.started_at,
            completed_at=job.finished_at,
            # A success clears the error of the attempts before it.
            error_message="" if result is not None else job.error,
            retry_count=job.failures,
            next_attempt_at=job.run_at,
            result=None if result is None else self._results.decode(result["r"]),
            review_reason="" if result is None else result["why"],
            review=None
            if review is None
            else Review(ReviewDecision(review[0]), review[1], review[2], review[3]),
            dead_lettered=job.state is JobState.FAILED and not inline,
            fairness_key=job.fairness_key,
            effective_priority=Priority(
                effective_priority(job.priority, job.ready_at, self._clock(), self._policy)
            )
            if job.state is JobState.AVAILABLE
            else None,
            scheduled_for=job.scheduled_for,
        )

    async def _dead_letters(self, failed: int) -> int:
        if not failed:
            return 0
        listed, after = 0, 0
        while True:
            chunk = await self._store.list(
                self._queue, states=frozenset({JobState.FAILED}), after=after, limit=_LIST_CHUNK
            )
            listed += sum(1 for job in chunk.jobs if not job.payload.get("inline"))
            if chunk.next_after is None:
                return listed
            after = chunk.next_after

    def _check_room(self, counts: QueueCounts, count: int) -> None:
        if self._stopped:
            raise ClosedError("message queue")
        unfinished = counts.count(JobState.AVAILABLE) + counts.count(JobState.RUNNING)
        if unfinished + count > self.max_size:
            raise QueueFullError(self.max_size, self._retry_after())

    def _retry_after(self) -> float:
        return max(_MIN_RETRY_AFTER, self._attempt_estimate / max(self.workers, 1))

    def _estimate(self, position: int) -> float:
        """Seconds until a message with position messages ahead is processed."""
        rounds = position // max(self.workers, 1) + 1
        return rounds * self._attempt_estimate

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                # One replica sweeps per interval: whichever holds the lead.
                leading = await self._store.lead(
                    f"sweep:{self._queue}",
                    self._owner,
                    ttl=self._sweep_interval,
                    now=self._clock(),
                )
                if not leading:
                    continue
                removed = await self.sweep_expired()
            except StoreError as error:
                log.error("the retention sweep could not delete expired messages: %s", error)
                continue
            if removed:
                log.info("retention sweep removed %d messages", removed)


async def _next_of(changes: Subscription[JobChange], message_id: str) -> JobChange | None:
    """The next change of message_id, or None for a change of another message."""
    change = await changes.next_within(None)
    return change if change is not None and change.job_id == message_id else None


@contextlib.contextmanager
def _as_message(message_id: str, operation: str = "") -> Iterator[None]:
    """The store's errors about a job, said of the message it is."""
    try:
        yield
    except NotFoundError:
        raise NotFoundError("message", message_id) from None
    except InvalidStateError as error:
        raise InvalidStateError(
            "message", message_id, error.state, operation or error.operation
        ) from None


def _describe(message: Message[Any, Any]) -> str:
    if message.status is MessageStatus.FAILED:
        return "failed but not dead-lettered"
    return message.status.value
