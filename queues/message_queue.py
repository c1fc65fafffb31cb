"""A bounded, durable priority message queue worked by a pool of asyncio workers.

Ordering: URGENT > HIGH > NORMAL > LOW, FIFO (creation order) within a
priority. A worker takes the best ready message only once it is free, so
nothing is claimed ahead of time: a HIGH message submitted while every worker
is busy still goes before the NORMALs that were waiting.

Each attempt runs in its worker's task, cut at the message's attempt_timeout. A
failed or timed-out attempt adds one to retry_count; while retries remain the
message waits out a backoff as PENDING (holding no worker), then is ready
again. A message gets 1 + max_retries attempts; after the last it is FAILED
and dead-lettered until redriven.

Durability: every change that must survive a crash is committed to the store
before it becomes visible, in the message's turn (KeyedLock), so the store's
order of changes is memory's. A change is a chain of callbacks on the store's
future rather than a task, so a caller that goes away cannot split commit from
apply, and the hot path pays for no task per commit. PROCESSING is never
written: after a crash the message is PENDING again and its attempt runs
again (processing is at-least-once), while its result is written once, when
an attempt succeeds. A worker hands that write to the store and goes on to
the next message; the message stays PROCESSING until the write is durable,
so `workers` bounds the attempts running, not the results being written.
While the store cannot record attempts (a full disk, say), ready messages wait
for it and one at a time is tried again with backoff (store_outage.py). Any
failure to record an end, a result codec that raises included, settles the
change's future and fails that attempt: no worker dies of it.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Generic

from queues.backoff import Backoff
from queues.codec import Codec, JsonCodec
from queues.errors import (
    ClosedError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.ids import random_id
from queues.keyed_lock import KeyedLock
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
from queues.message_records import COLLECTION, MessageCodec, RequestFacts, delete
from queues.message_stats import MessageCounters, QueueStats
from queues.records import load_records
from queues.shielded import ShieldedSteps
from queues.state_watch import StateWatch
from queues.storage import MemoryStore, Put, Store, StoreError
from queues.store_outage import StoreOutage

log = logging.getLogger(__name__)

#: What the queue runs for each attempt: a payload in, an Outcome out.
Handler = Callable[[P], Awaitable[Outcome[R]]]

# Until an attempt has been timed, estimates assume this many seconds each.
_INITIAL_ATTEMPT_ESTIMATE = 1.0
# Weight of the newest attempt in the moving average of attempt durations.
_EWMA_WEIGHT = 0.2
# Shortest retry hint given to a client refused by a full queue, in seconds.
_MIN_RETRY_AFTER = 0.5
_FIELDS = tuple(f.name for f in fields(Message))


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


class BatchRequestConflictError(RequestConflictError):
    """A batch item's request_id was used before for a different submission."""

    def __init__(self, request_id: str, index: int) -> None:
        super().__init__(request_id)
        self.args = (f"item {index}: {self}",)
        #: The item's place in the batch, from 0.
        self.index = index


@dataclass(slots=True)
class _Request:
    message_id: str
    facts: RequestFacts
    #: Done once the first submission is committed (or failed to be).
    committed: asyncio.Future[None]


_TIMED_OUT = "timed out"
_INTERRUPTED = "interrupted"


class _Attempt:
    """An attempt under way in `task`, which cut() cancels (once) to stop it."""

    __slots__ = ("cut_by", "ended", "task")

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        #: _TIMED_OUT or _INTERRUPTED once cut.
        self.cut_by: str | None = None
        #: Made by stop() to wait for the attempt; done when it ends.
        self.ended: asyncio.Future[None] | None = None

    def cut(self, why: str) -> None:
        if self.cut_by is None:
            self.cut_by = why
            self.task.cancel()

    def end(self) -> None:
        """The attempt is over: take back its cut, and tell stop()."""
        if self.cut_by is not None:
            # An attempt can only be cut while its task waits inside the
            # handler, so the cancellation has been delivered by now.
            self.task.uncancel()
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)


@dataclass(frozen=True, slots=True)
class _AttemptEnd(Generic[R]):
    outcome: Outcome[R] | None = None
    error: str = ""
    #: stop() cut it: it does not count as a failure.
    interrupted: bool = False


class MessageQueue(Generic[P, R]):
    """The queue. Use `async with MessageQueue(...)` or start()/stop()."""

    def __init__(
        self,
        handler: Handler[P, R],
        *,
        workers: int = 4,
        max_size: int = 1000,
        max_retries: int = 3,
        attempt_timeout: float = 300.0,
        retention: float = 86_400.0,
        sweep_interval: float = 60.0,
        backoff: Backoff | None = None,
        store_backoff: Backoff | None = None,
        store: Store | None = None,
        payload_codec: Codec[P] | None = None,
        result_codec: Codec[R] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = random_id,
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
        self._handler = handler
        self.workers = workers
        self.max_size = max_size
        self.max_retries = max_retries
        self.attempt_timeout = attempt_timeout
        self.retention = retention
        self._sweep_interval = sweep_interval
        self._backoff = backoff or Backoff()
        self._store: Store = store or MemoryStore()
        self._codec: MessageCodec[P, R] = MessageCodec(
            payload_codec or JsonCodec(), result_codec or JsonCodec()
        )
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
        self._attempts: dict[str, _Attempt] = {}
        # (completed_at, id) in the order messages became final: the sweep pops
        # from the left while entries are older than the retention period.
        self._finished: deque[tuple[float, str]] = deque()
        self._requests: dict[str, _Request] = {}
        self._locks = KeyedLock()
        # Commit-then-apply steps, run to their end even if their caller goes away.
        self._steps = ShieldedSteps()
        self._watch: StateWatch[Message[P, R]] = StateWatch(lambda m: m.status.is_final)
        self._counters = MessageCounters(self._is_pending)
        # Submissions being committed: they count against max_size already.
        self._reserved = 0
        self._attempt_estimate = _INITIAL_ATTEMPT_ESTIMATE
        # Capped at 30 s: a freed disk is in use again within that, by itself.
        self._outage = StoreOutage(store_backoff or Backoff(base=1.0, cap=30.0), self._release)

        self._recovered = False
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._idle_workers: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the queue from its store (once), then start the workers and
        the retention sweep. Raises StoreError if the store cannot be read, and
        RecordError (a StoreError) naming the record for one it cannot decode."""
        if self._worker_tasks:
            return
        if not self._recovered:
            await self._recover()
            self._recovered = True
        self._stopped = False
        self._worker_tasks = [
            asyncio.create_task(self._work(), name=f"message-queue-worker-{n}")
            for n in range(self.workers)
        ]
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="message-queue-sweep")
        self._outage.resume()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting work, let running attempts finish for up to `grace`
        seconds (None: wait for them), then hand unfinished attempts back to
        PENDING. Nothing accepted is dropped: pending messages stay pending, in
        memory and in the store."""
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for handle in self._retry_timers.values():
            handle.cancel()
        self._retry_timers.clear()
        self._outage.pause()
        for worker in self._idle_workers:
            worker.cancel()
        if self._attempts and grace != 0:
            loop = asyncio.get_running_loop()
            for attempt in self._attempts.values():
                attempt.ended = loop.create_future()
            await asyncio.wait(
                [attempt.ended for attempt in self._attempts.values() if attempt.ended],
                timeout=grace,
            )
        for attempt in list(self._attempts.values()):
            attempt.cut(_INTERRUPTED)
        await asyncio.gather(
            *self._worker_tasks, *([self._sweeper] if self._sweeper else []), return_exceptions=True
        )
        await self._steps.wait()
        self._worker_tasks = []
        self._sweeper = None

    async def __aenter__(self) -> MessageQueue[P, R]:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- commands --------------------------------------------------------------

    async def submit(
        self,
        payload: P,
        *,
        priority: Priority,
        request_id: str = "",
        max_retries: int | None = None,
        attempt_timeout: float | None = None,
    ) -> Submitted[P, R]:
        """Queue a message; answers once it is committed to the store.

        Raises QueueFullError when max_size messages are unfinished, ClosedError
        after stop(), StoreError if it could not be committed (then nothing
        was queued), and RequestConflictError when request_id was used for a
        different submission. A repeated request_id with the same submission
        returns the first answer, with the message as it is now.
        """
        facts = None
        if request_id:
            fingerprint = self._codec.fingerprint(payload, priority, max_retries, attempt_timeout)
            earlier = self._requests.get(request_id)
            if earlier is not None:
                return await self._repeat(request_id, earlier, fingerprint)
        self._check_capacity()
        position = sum(self._counters.pending(p) for p in Priority if p >= priority)
        estimate = self._estimate(position)
        message = self._new_message(
            payload, priority, MessageStatus.PENDING, request_id, max_retries, attempt_timeout
        )
        if request_id:
            facts = RequestFacts(fingerprint, position, estimate)
        # Made before anything is reserved: a payload the codec refuses leaves nothing behind.
        record = self._codec.put(message, facts)
        if facts is not None:
            committed = asyncio.get_running_loop().create_future()
            self._requests[request_id] = _Request(message.id, facts, committed)
        self._reserved += 1
        answer: asyncio.Future[Submitted[P, R]] = asyncio.get_running_loop().create_future()
        step = self._steps.track(self._store.commit([record]))
        step.add_done_callback(
            functools.partial(self._submit_committed, message, position, estimate, answer)
        )
        return await answer

    def _submit_committed(
        self,
        message: Message[P, R],
        position: int,
        estimate: float,
        answer: asyncio.Future[Submitted[P, R]],
        step: asyncio.Future[None],
    ) -> None:
        """Queue a submitted message once it is committed; its caller may have gone."""
        self._reserved -= 1
        error = step.exception()
        self._settle_submission(message, error)
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(Submitted(message.copy(), position, estimate))

    def _settle_submission(self, message: Message[P, R], error: BaseException | None) -> None:
        """Queue a message whose commit succeeded, or forget the request_id of one
        whose commit failed; either way, repeats waiting on it are told."""
        request = self._requests.get(message.request_id) if message.request_id else None
        if error is not None:
            if request is not None:
                del self._requests[message.request_id]
                request.committed.set_exception(error)
                # Repeats waiting on it re-raise it; with none, it is not "lost".
                request.committed.exception()
            return
        if self._outage.active:
            self._outage.ended()
        self._register(message)
        self._make_ready(message)
        if request is not None:
            request.committed.set_result(None)

    async def submit_many(self, items: Sequence[NewMessage[P]]) -> list[Submitted[P, R]]:
        """Queue every item, all or none, in one store commit; answers in items'
        order once it is committed. Items are queued in their order, so within
        a priority each goes after the one before it.

        An item whose request_id was used before answers as submit() does for
        a repeat (duplicate=True), and takes no room. Raises, queueing nothing:
        BatchRequestConflictError (a RequestConflictError naming the item) when
        an item's request_id was used for a different submission; QueueFullError
        when the queue has no room for every new item; ClosedError after stop();
        StoreError if the commit failed; ValueError when two items share a
        request_id.
        """
        repeats: dict[int, tuple[_Request, str]] = {}
        fresh: list[tuple[int, NewMessage[P], str]] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            request_id = item.request_id
            fingerprint = ""
            if request_id:
                if request_id in seen:
                    raise ValueError(f"item {index} repeats request_id {request_id!r}")
                seen.add(request_id)
                fingerprint = self._codec.fingerprint(
                    item.payload, item.priority, item.max_retries, item.attempt_timeout
                )
                earlier = self._requests.get(request_id)
                if earlier is not None:
                    if earlier.facts.fingerprint != fingerprint:
                        raise BatchRequestConflictError(request_id, index)
                    repeats[index] = (earlier, fingerprint)
                    continue
            fresh.append((index, item, fingerprint))
        answers: dict[int, Submitted[P, R]] = {}
        if fresh:
            self._check_capacity(len(fresh))
            queued = await self._submit_fresh(fresh)
            answers = {index: each for (index, _, _), each in zip(fresh, queued, strict=True)}
        # After the commit: a repeat of a request still being committed waits for it.
        for index, (earlier, fingerprint) in repeats.items():
            answers[index] = await self._repeat(items[index].request_id, earlier, fingerprint)
        return [answers[index] for index in range(len(items))]

    def _submit_fresh(
        self, fresh: Sequence[tuple[int, NewMessage[P], str]]
    ) -> asyncio.Future[list[Submitted[P, R]]]:
        """Commit the new messages of a batch, checked and with room for them, in
        one commit; the future answers once they are queued."""
        # Earlier items of the batch go ahead of later ones of their priority or lower.
        ahead = {p: self._counters.pending(p) for p in Priority}
        messages: list[Message[P, R]] = []
        answers: list[Submitted[P, R]] = []
        records: list[Put] = []
        facts: list[RequestFacts | None] = []
        for _, item, fingerprint in fresh:
            position = sum(count for p, count in ahead.items() if p >= item.priority)
            ahead[item.priority] += 1
            estimate = self._estimate(position)
            message = self._new_message(
                item.payload,
                item.priority,
                MessageStatus.PENDING,
                item.request_id,
                item.max_retries,
                item.attempt_timeout,
            )
            fact = RequestFacts(fingerprint, position, estimate) if item.request_id else None
            records.append(self._codec.put(message, fact))
            messages.append(message)
            facts.append(fact)
            answers.append(Submitted(message, position, estimate))
        # Only once every record is made: a payload the codec refuses leaves nothing behind.
        loop = asyncio.get_running_loop()
        for message, fact in zip(messages, facts, strict=True):
            if fact is not None:
                self._requests[message.request_id] = _Request(
                    message.id, fact, loop.create_future()
                )
        self._reserved += len(messages)
        answer: asyncio.Future[list[Submitted[P, R]]] = loop.create_future()
        step = self._steps.track(self._store.commit(records))
        step.add_done_callback(functools.partial(self._batch_committed, answers, answer))
        return answer

    def _batch_committed(
        self,
        submitted: list[Submitted[P, R]],
        answer: asyncio.Future[list[Submitted[P, R]]],
        step: asyncio.Future[None],
    ) -> None:
        """Queue a batch's new messages once committed; its caller may have gone."""
        self._reserved -= len(submitted)
        error = step.exception()
        for each in submitted:
            self._settle_submission(each.message, error)
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(
                [Submitted(s.message.copy(), s.position, s.estimated_seconds) for s in submitted]
            )

    async def run_inline(
        self,
        payload: P,
        *,
        priority: Priority,
        attempt_timeout: float | None = None,
    ) -> Message[P, R]:
        """Process a message in the caller's task, bypassing the queue, and
        return it after its one attempt: COMPLETED, AWAITING_REVIEW, FAILED (not
        dead-lettered: the caller is there to retry) or CANCELLED. Only its
        final state is written: until then the caller has been promised nothing."""
        self._check_capacity()
        message = self._new_message(
            payload, priority, MessageStatus.PROCESSING, "", 0, attempt_timeout
        )
        self._register(message)
        try:
            end = await self._attempt(message)
        except asyncio.CancelledError:
            if message.status is MessageStatus.PROCESSING:
                self._unregister(message)
            raise
        if message.status is MessageStatus.PROCESSING:
            try:
                await asyncio.shield(self._record(message, end, queued=False))
            except Exception:
                self._unregister(message)
                raise
        return message.copy()

    async def cancel(self, message_id: str) -> Message[P, R]:
        """Cancel a PENDING, PROCESSING or AWAITING_REVIEW message."""

        def change(message: Message[P, R]) -> Message[P, R]:
            if message.status.is_final:
                raise InvalidStateError("message", message_id, message.status.value, "cancel")
            return self._finished_copy(message, MessageStatus.CANCELLED, next_attempt_at=None)

        return await asyncio.shield(self._change(message_id, change))

    async def redrive(self, message_id: str) -> Message[P, R]:
        """Put a dead-lettered message back in the queue with its retries reset."""

        def change(message: Message[P, R]) -> Message[P, R]:
            if not message.dead_lettered:
                raise InvalidStateError("message", message_id, self._describe(message), "redrive")
            self._check_capacity()
            return message.copy(
                status=MessageStatus.PENDING,
                dead_lettered=False,
                retry_count=0,
                error_message="",
                completed_at=None,
                next_attempt_at=None,
            )

        return await asyncio.shield(self._change(message_id, change))

    async def review(
        self, message_id: str, decision: ReviewDecision, reviewer: str, note: str = ""
    ) -> Message[P, R]:
        """Record a human decision on a message AWAITING_REVIEW."""

        def change(message: Message[P, R]) -> Message[P, R]:
            if message.status is not MessageStatus.AWAITING_REVIEW:
                raise InvalidStateError("message", message_id, message.status.value, "review")
            final = (
                MessageStatus.COMPLETED
                if decision is ReviewDecision.APPROVE
                else MessageStatus.REJECTED
            )
            review = Review(decision, reviewer, note, self._clock())
            return self._finished_copy(message, final, review=review)

        return await asyncio.shield(self._change(message_id, change))

    async def sweep_expired(self) -> int:
        """Remove messages that have been final for longer than the retention
        period; returns how many were removed.

        They leave memory first, then the store: should that commit fail, they
        are swept again from the store after the next start.
        """
        cutoff = self._clock() - self.retention
        removed: list[Message[P, R]] = []
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
            if self._locks.in_use(message_id):
                self._finished.appendleft((completed_at, message_id))
                break
            self._unregister(message)
            removed.append(message)
        if len(self._seqs) > 2 * len(self._by_seq) + 64:
            self._seqs = [seq for seq in self._seqs if seq in self._by_seq]
        if removed:
            await self._store.commit([delete(message) for message in removed])
        return len(removed)

    # -- queries ---------------------------------------------------------------

    def get(self, message_id: str) -> Message[P, R]:
        """A snapshot of the message; NotFoundError if unknown or expired."""
        return self._get(message_id).copy()

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
            page.append(message.copy())
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

    # -- state ---------------------------------------------------------------------

    def _new_message(
        self,
        payload: P,
        priority: Priority,
        status: MessageStatus,
        request_id: str,
        max_retries: int | None,
        attempt_timeout: float | None,
    ) -> Message[P, R]:
        return Message(
            id=self._new_id(),
            seq=next(self._seq),
            payload=payload,
            priority=priority,
            status=status,
            created_at=self._clock(),
            max_retries=self.max_retries if max_retries is None else max_retries,
            attempt_timeout=attempt_timeout or self.attempt_timeout,
            request_id=request_id,
        )

    def _register(self, message: Message[P, R]) -> None:
        self._messages[message.id] = message
        self._by_seq[message.seq] = message
        # Seqs are taken in creation order but registered when their commit
        # lands (run_inline's at once), so a later seq can come first.
        bisect.insort(self._seqs, message.seq)
        self._counters.moved(message.priority, None, message.status)
        if message.status is MessageStatus.PENDING:
            self._counters.entered_pending(message.created_at, message.seq, message.id)
        if message.dead_lettered:
            self._counters.dead_letters += 1

    def _unregister(self, message: Message[P, R]) -> None:
        del self._messages[message.id]
        del self._by_seq[message.seq]
        self._counters.moved(message.priority, message.status, None)
        if message.dead_lettered:
            self._counters.dead_letters -= 1
        if message.request_id:
            self._requests.pop(message.request_id, None)

    async def _recover(self) -> None:
        now = self._clock()
        finished: list[tuple[float, str]] = []
        last_seq = 0
        records = await load_records(self._store, COLLECTION, self._codec.message)
        for message, facts in records:
            self._register(message)
            last_seq = max(last_seq, message.seq)
            if facts is not None:
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                self._requests[message.request_id] = _Request(message.id, facts, done)
            if message.status is MessageStatus.PENDING:
                due = message.next_attempt_at
                if due is not None and due > now:
                    self._schedule_retry_at(message, due - now)
                else:
                    self._make_ready(message)
            elif message.status.is_final and message.completed_at is not None:
                finished.append((message.completed_at, message.id))
        self._finished = deque(sorted(finished))
        self._seq = itertools.count(last_seq + 1)
        if self._messages:
            log.info("recovered %d messages from the store", len(self._messages))

    def _change(
        self,
        message_id: str,
        change: Callable[[Message[P, R]], Message[P, R] | None],
    ) -> asyncio.Future[Message[P, R]]:
        """In the message's turn: compute its next state with change (which may
        raise to refuse, or answer None: nothing to change), commit it, then make
        it the message's state. The future answers a snapshot. It is driven by
        callbacks, so it runs to its end whoever waits for it; callers that can
        be cancelled await it through asyncio.shield."""
        done: asyncio.Future[Message[P, R]] = asyncio.get_running_loop().create_future()
        self._steps.track(done)

        # Whatever raises in turn or applied (change, a codec, the store) settles
        # done and ends the turn: nothing escapes into the caller of a callback,
        # which may be a worker or another key's release.
        def turn() -> None:
            try:
                message = self._get(message_id)
                new = change(message)
                if new is None:
                    done.set_result(message.copy())
                else:
                    committed = self._store.commit([self._codec.put(new, self._facts(new))])
                    committed.add_done_callback(functools.partial(applied, message, new))
                    return
            except Exception as error:
                done.set_exception(error)
            self._locks.release(message_id)

        def applied(
            message: Message[P, R], new: Message[P, R], committed: asyncio.Future[None]
        ) -> None:
            try:
                error = committed.exception()
                if error is None:
                    if self._outage.active:
                        self._outage.ended()
                    self._install(message, new)
                    done.set_result(message.copy())
                else:
                    done.set_exception(error)
            except Exception as failure:
                done.set_exception(failure)
            finally:
                self._locks.release(message_id)

        self._locks.take(message_id, turn)
        return done

    def _install(self, message: Message[P, R], new: Message[P, R]) -> None:
        """Make new (a committed copy of message) the message's state, and set
        its work going or stop it as the new state requires."""
        old_status, was_dead = message.status, message.dead_lettered
        for name in _FIELDS:
            setattr(message, name, getattr(new, name))
        if new.status.is_final:
            timer = self._retry_timers.pop(message.id, None)
            if timer is not None:
                timer.cancel()
            attempt = self._attempts.get(message.id)
            if attempt is not None:
                attempt.cut(_INTERRUPTED)
        elif new.status is MessageStatus.PENDING and old_status is not MessageStatus.PENDING:
            if new.next_attempt_at is None:
                self._make_ready(message)
            elif not self._stopped:
                # While closing, no timer is set: the retry is due when the queue next starts.
                self._schedule_retry_at(message, max(new.next_attempt_at - self._clock(), 0.0))
        if new.status is not old_status:
            self._counters.moved(message.priority, old_status, new.status)
        if new.status is MessageStatus.PENDING and old_status is not MessageStatus.PENDING:
            self._counters.entered_pending(message.created_at, message.seq, message.id)
        self._counters.dead_letters += int(new.dead_lettered) - int(was_dead)
        if new.status.is_final and not old_status.is_final and new.completed_at is not None:
            self._finished.append((new.completed_at, message.id))
        self._publish(message)

    def _finished_copy(
        self, message: Message[P, R], status: MessageStatus, **changes: object
    ) -> Message[P, R]:
        return message.copy(status=status, completed_at=self._clock(), **changes)

    def _facts(self, message: Message[P, R]) -> RequestFacts | None:
        request = self._requests.get(message.request_id) if message.request_id else None
        return None if request is None else request.facts

    def _set_status(self, message: Message[P, R], status: MessageStatus) -> None:
        """An in-memory change only: PROCESSING, or back from it to PENDING."""
        self._counters.moved(message.priority, message.status, status)
        message.status = status
        if status is MessageStatus.PENDING:
            self._counters.entered_pending(message.created_at, message.seq, message.id)
        self._publish(message)

    def _get(self, message_id: str) -> Message[P, R]:
        message = self._messages.get(message_id)
        if message is None:
            raise NotFoundError("message", message_id)
        return message

    def _is_pending(self, message_id: str) -> bool:
        message = self._messages.get(message_id)
        return message is not None and message.status is MessageStatus.PENDING

    async def _repeat(
        self, request_id: str, earlier: _Request, fingerprint: str
    ) -> Submitted[P, R]:
        if earlier.facts.fingerprint != fingerprint:
            raise RequestConflictError(request_id)
        await asyncio.shield(earlier.committed)
        message = self._get(earlier.message_id)
        facts = earlier.facts
        return Submitted(message.copy(), facts.position, facts.estimated_seconds, duplicate=True)

    def _check_capacity(self, count: int = 1) -> None:
        """Refuse unless the queue is open and has room for count more messages."""
        if self._stopped:
            raise ClosedError("message queue")
        if self._counters.unfinished + self._reserved + count > self.max_size:
            retry_after = max(_MIN_RETRY_AFTER, self._attempt_estimate / self.workers)
            raise QueueFullError(self.max_size, retry_after)

    def _estimate(self, position: int) -> float:
        """Seconds until a message with `position` messages ahead is processed."""
        rounds = position // self.workers + 1
        return rounds * self._attempt_estimate

    def _make_ready(self, message: Message[P, R]) -> None:
        self._ready.put_nowait((-message.priority, message.seq, message.id))

    def _schedule_retry_at(self, message: Message[P, R], delay: float) -> None:
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
    def _describe(message: Message[P, R]) -> str:
        if message.status is MessageStatus.FAILED:
            return "failed but not dead-lettered"
        return message.status.value

    # -- processing ----------------------------------------------------------------

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        while not self._stopped:
            self._idle_workers.add(worker)
            try:
                _, _, message_id = await self._ready.get()
            finally:
                self._idle_workers.discard(worker)
            if self._outage.active and self._outage.holds(message_id):
                continue
            message = self._claim(message_id)
            if message is None:
                continue
            end = await self._attempt(message)
            if message.status is not MessageStatus.PROCESSING:
                continue  # cancelled through cancel(), which recorded it
            if end.interrupted:
                self._set_status(message, MessageStatus.PENDING)
                continue
            # The store writes the result while this worker takes the next message.
            self._record(message, end, queued=True).add_done_callback(
                functools.partial(self._recorded, message)
            )

    def _recorded(
        self,
        message: Message[P, R],
        step: asyncio.Future[Message[P, R]],
        *,
        outcome_refused: bool = False,
    ) -> None:
        """Deal with an attempt whose end could not be recorded; the store still
        holds the message as it was before the attempt."""
        error = step.exception()
        if error is None or message.status is not MessageStatus.PROCESSING:
            return
        if isinstance(error, StoreError):
            # Memory goes back to what the store holds, and the attempt runs
            # again once the store records again.
            self._set_status(message, MessageStatus.PENDING)
            self._outage.failed(message.id, error)
            return
        log.error("could not record the attempt of message %s", message.id, exc_info=error)
        if not outcome_refused:
            # What the attempt produced cannot be recorded (a result its codec
            # refuses, say): that attempt failed, and is recorded as such.
            end: _AttemptEnd[R] = _AttemptEnd(
                error=f"cannot record the outcome: {type(error).__name__}: {error}"
            )
            self._record(message, end, queued=True).add_done_callback(
                functools.partial(self._recorded, message, outcome_refused=True)
            )
            return
        # Not even the failure can be recorded: try the attempt again later.
        self._set_status(message, MessageStatus.PENDING)
        if not self._stopped:
            self._schedule_retry_at(message, self._backoff.delay(message.retry_count + 1))

    def _release(self, message_id: str) -> bool:
        """Make a message the store outage held ready, if it still waits."""
        if not self._is_pending(message_id):
            return False
        self._make_ready(self._messages[message_id])
        return True

    def _claim(self, message_id: str) -> Message[P, R] | None:
        """The message of a ready entry, now PROCESSING; None for an entry whose
        message was cancelled while it waited, which is skipped."""
        message = self._messages.get(message_id)
        if message is None or message.status is not MessageStatus.PENDING:
            return None
        message.next_attempt_at = None
        message.started_at = self._clock()
        self._set_status(message, MessageStatus.PROCESSING)
        return message

    async def _attempt(self, message: Message[P, R]) -> _AttemptEnd[R]:
        """Run one attempt of a PROCESSING message in the calling task (a worker,
        or run_inline's caller) and say how it ended.

        No task of its own: it would cost about a third of the queue's own work
        per message. The attempt is cut at its timeout, or by cancel() and
        stop(), by cancelling the calling task; the CancelledError that lands
        in the handler is taken back here, and a cancellation of the caller
        by anyone else goes on up."""
        started_at = message.started_at = message.started_at or self._clock()
        task = asyncio.current_task()
        assert task is not None
        attempt = _Attempt(task)
        self._attempts[message.id] = attempt
        loop = asyncio.get_running_loop()
        timer = loop.call_at(loop.time() + message.attempt_timeout, attempt.cut, _TIMED_OUT)
        try:
            outcome = await self._handler(message.payload)
        except asyncio.CancelledError:
            if attempt.cut_by is None or task.cancelling() > 1:
                raise
            if attempt.cut_by is _INTERRUPTED:
                return _AttemptEnd(interrupted=True)
            self._record_attempt_time(started_at)
            return _AttemptEnd(error=f"attempt timed out after {message.attempt_timeout:g}s")
        except Exception as exc:
            self._record_attempt_time(started_at)
            return _AttemptEnd(error=f"{type(exc).__name__}: {exc}")
        finally:
            timer.cancel()
            del self._attempts[message.id]
            attempt.end()
        self._record_attempt_time(started_at)
        return _AttemptEnd(outcome=outcome)

    def _record(
        self, message: Message[P, R], end: _AttemptEnd[R], *, queued: bool
    ) -> asyncio.Future[Message[P, R]]:
        """Commit how an attempt of a PROCESSING message ended, then apply it.

        `queued` messages came from the queue: they are retried and
        dead-lettered. Inline ones (run_inline) end FAILED at the first failure.
        """

        def change(current: Message[P, R]) -> Message[P, R] | None:
            if current.status is not MessageStatus.PROCESSING:
                return None  # cancelled meanwhile: cancel() recorded it
            if end.interrupted:
                return self._finished_copy(
                    current,
                    MessageStatus.FAILED,
                    error_message="interrupted: the service is shutting down",
                    retry_count=current.retry_count + 1,
                )
            if end.outcome is not None:
                status = (
                    MessageStatus.AWAITING_REVIEW
                    if end.outcome.review_reason
                    else MessageStatus.COMPLETED
                )
                return self._finished_copy(
                    current,
                    status,
                    result=end.outcome.result,
                    review_reason=end.outcome.review_reason,
                    error_message="",
                )
            retries = current.retry_count + 1
            if not queued:
                return self._finished_copy(
                    current, MessageStatus.FAILED, retry_count=retries, error_message=end.error
                )
            if retries > current.max_retries:
                return self._finished_copy(
                    current,
                    MessageStatus.FAILED,
                    retry_count=retries,
                    error_message=end.error,
                    dead_lettered=True,
                )
            return current.copy(
                status=MessageStatus.PENDING,
                retry_count=retries,
                error_message=end.error,
                next_attempt_at=self._clock() + self._backoff.delay(retries),
            )

        return self._change(message.id, change)

    def _record_attempt_time(self, started_at: float) -> None:
        elapsed = max(self._clock() - started_at, 0.0)
        self._attempt_estimate += _EWMA_WEIGHT * (elapsed - self._attempt_estimate)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                removed = await self.sweep_expired()
            except StoreError as error:
                # One line per sweep: a store that is down is no news after the first.
                log.error("the retention sweep could not delete expired messages: %s", error)
                continue
            if removed:
                log.info("retention sweep removed %d messages", removed)
