"""A pool that runs async task functions in priority order, a bounded number at once.

Ordering: HIGH before MEDIUM before LOW, FIFO (submission order) within a
priority. Exactly max_concurrent_tasks workers take tasks, and a worker takes
the best waiting task only once it is free, so nothing is claimed ahead of
time: a HIGH task submitted while every slot is busy gets the next free slot.
A slot is free again once the task function has actually returned, so a
cancelled task that is still unwinding keeps its slot until it has.

Every method that changes state does so without suspending (add_priority_task
is async only for the seed's signature), so each one is atomic with respect to
the others on the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

from queues.errors import ClosedError, InvalidStateError, NotFoundError
from queues.state_watch import StateWatch

log = logging.getLogger(__name__)

R = TypeVar("R")

#: What the pool runs: awaited as task_func(**kwargs).
TaskFunc = Callable[..., Awaitable[R]]


class TaskPriority(IntEnum):
    """Smaller values run first: asyncio.PriorityQueue pops the smallest item."""

    #: Runs before MEDIUM and LOW.
    HIGH = 1
    #: The usual priority.
    MEDIUM = 2
    #: Runs after HIGH and MEDIUM.
    LOW = 3


class TaskStatus(StrEnum):
    #: Waiting for a free slot.
    QUEUED = "queued"
    #: Its task function is running in a slot.
    RUNNING = "running"
    #: The task function returned; result holds what it returned. Final.
    SUCCEEDED = "succeeded"
    #: The task function raised; error holds "ExcType: message". Final.
    FAILED = "failed"
    #: Cancelled through cancel_task, or running when the pool stopped. Final.
    CANCELLED = "cancelled"
    #: Its deadline passed while it was queued or running. Final.
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT}
)


@dataclass(order=True, frozen=True, slots=True)
class PriorityTask(Generic[R]):
    """The item waiting in the priority queue, ordered by (priority, seq) only."""

    priority: TaskPriority
    #: Submission order: FIFO within a priority.
    seq: int
    task_id: str = field(compare=False)
    order_req_id: str = field(compare=False)
    task_func: TaskFunc[R] = field(compare=False)
    kwargs: dict[str, Any] = field(compare=False)
    created_at: float = field(compare=False)
    #: Absolute time (the pool's clock, epoch seconds) it must end by; None: no deadline.
    deadline: float | None = field(compare=False, default=None)


@dataclass(slots=True)
class TaskRecord(Generic[R]):
    """One task and everything that has happened to it.

    The pool mutates its own copy; callers get snapshots. Times are epoch
    seconds from the pool's clock.
    """

    task_id: str
    order_req_id: str
    priority: TaskPriority
    status: TaskStatus
    created_at: float
    deadline: float | None = None
    #: Tasks that were waiting ahead of it when it was queued (0 = next).
    queue_position: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    #: What the task function returned, once SUCCEEDED.
    result: R | None = None
    #: Why it failed or stopped; "" otherwise.
    error: str = ""


class PriorityQueueManager(Generic[R]):
    """The pool. Tasks may be added before start(); they wait until it runs."""

    def __init__(
        self,
        max_concurrent_tasks: int = 10,
        *,
        result_retention: float = 3600.0,
        cleanup_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        on_removed: Callable[[str], None] = lambda task_id: None,
    ) -> None:
        if max_concurrent_tasks < 1:
            raise ValueError(f"max_concurrent_tasks must be at least 1; got {max_concurrent_tasks}")
        if result_retention < 0 or cleanup_interval <= 0:
            raise ValueError(
                "result_retention must not be negative and cleanup_interval must be positive"
            )
        self.max_concurrent_tasks = max_concurrent_tasks
        self.result_retention = result_retention
        self._cleanup_interval = cleanup_interval
        self._clock = clock
        self._new_id = new_id
        # Called with the id of each task cleanup removes, in the same step, so
        # whoever keeps data per task drops it in step with the pool. Must not raise.
        self._on_removed = on_removed

        self._records: dict[str, TaskRecord[R]] = {}
        self._seq = itertools.count(1)
        # May hold entries of tasks that were cancelled or timed out while
        # queued: workers skip them when they reach the top.
        self._queue: asyncio.PriorityQueue[PriorityTask[R]] = asyncio.PriorityQueue()
        self._by_status: Counter[TaskStatus] = Counter()
        self._queued_by_priority: Counter[TaskPriority] = Counter()
        self._deadline_timers: dict[str, asyncio.TimerHandle] = {}
        self._running: dict[str, asyncio.Task[R]] = {}
        # (completed_at, id) in the order tasks became final: cleanup pops from
        # the left while entries are old enough.
        self._finished: deque[tuple[float, str]] = deque()
        self._watch: StateWatch[TaskRecord[R]] = StateWatch(lambda r: r.status.is_final)

        self._workers: list[asyncio.Task[None]] = []
        self._cleaner: asyncio.Task[None] | None = None
        self._accepting = True

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start max_concurrent_tasks workers and the periodic cleanup, and
        accept tasks again after stop(). Does nothing if already started."""
        if self._workers:
            return
        self._accepting = True
        # An asyncio queue binds to the loop that first waits on it; a fresh one
        # per start lets a pool (such as the module-level default) be started on
        # another loop after stop(). Entries of tasks no longer queued are dropped.
        waiting = self._queue
        self._queue = asyncio.PriorityQueue()
        while not waiting.empty():
            item = waiting.get_nowait()
            if self._is_queued(item.task_id):
                self._queue.put_nowait(item)
        self._workers = [
            asyncio.create_task(self._work(), name=f"priority-task-worker-{n}")
            for n in range(self.max_concurrent_tasks)
        ]
        self._cleaner = asyncio.create_task(
            self._clean_periodically(), name="priority-task-cleanup"
        )

    async def stop(self) -> None:
        """Refuse new tasks, end every RUNNING task CANCELLED (its task function
        is cancelled and awaited) and stop the workers. QUEUED tasks stay
        QUEUED: a later start() runs them. Does nothing if already stopped."""
        self._accepting = False
        if not self._workers:
            return
        attempts = list(self._running.values())
        for task_id, attempt in list(self._running.items()):
            record = self._records[task_id]
            # A task cancelled or timed out that is still unwinding already has its end.
            if record.status is TaskStatus.RUNNING:
                self._finish(record, TaskStatus.CANCELLED, "the pool stopped")
            attempt.cancel()
        for worker in self._workers:
            worker.cancel()
        if self._cleaner is not None:
            self._cleaner.cancel()
        await asyncio.gather(
            *self._workers,
            *attempts,
            *([self._cleaner] if self._cleaner else []),
            return_exceptions=True,
        )
        self._workers = []
        self._cleaner = None

    # -- commands --------------------------------------------------------------

    async def add_priority_task(
        self,
        order_req_id: str,
        task_func: TaskFunc[R],
        priority: TaskPriority = TaskPriority.MEDIUM,
        *,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> str:
        """Queue task_func(**kwargs) and return the new task's id.

        `deadline` is absolute, on the pool's clock. The names order_req_id,
        task_func, priority and deadline cannot be passed on to task_func.
        Raises ClosedError after stop() until the next start(): a task accepted
        then would silently wait for a restart that may never come.
        """
        if not self._accepting:
            raise ClosedError("priority task pool")
        priority = TaskPriority(priority)
        now = self._clock()
        item: PriorityTask[R] = PriorityTask(
            priority=priority,
            seq=next(self._seq),
            task_id=self._new_id(),
            order_req_id=order_req_id,
            task_func=task_func,
            kwargs=kwargs,
            created_at=now,
            deadline=deadline,
        )
        record: TaskRecord[R] = TaskRecord(
            task_id=item.task_id,
            order_req_id=order_req_id,
            priority=priority,
            status=TaskStatus.QUEUED,
            created_at=now,
            deadline=deadline,
            queue_position=sum(self._queued_by_priority[p] for p in TaskPriority if p <= priority),
        )
        self._records[record.task_id] = record
        self._count(record, +1)
        self._queue.put_nowait(item)
        if deadline is not None:
            self._deadline_timers[record.task_id] = asyncio.get_running_loop().call_later(
                max(deadline - now, 0.0), self._deadline_passed, record.task_id
            )
        return record.task_id

    def cancel_task(self, task_id: str) -> TaskRecord[R]:
        """End a QUEUED or RUNNING task CANCELLED at once and return it.

        A running task function is cancelled; its slot is freed once it has
        unwound. InvalidStateError if the task is final, NotFoundError if unknown.
        """
        record = self._get(task_id)
        if record.status.is_final:
            raise InvalidStateError("task", task_id, record.status.value, "cancel")
        self._stop_task(record, TaskStatus.CANCELLED, f"cancelled while {record.status.value}")
        return self._snapshot(record)

    def cleanup_old_results(self, max_age_seconds: float | None = None) -> int:
        """Remove tasks that have been final for at least max_age_seconds
        (default: result_retention); returns how many were removed."""
        max_age = self.result_retention if max_age_seconds is None else max_age_seconds
        if max_age < 0:
            raise ValueError(f"max_age_seconds must not be negative; got {max_age}")
        cutoff = self._clock() - max_age
        removed = 0
        while self._finished and self._finished[0][0] <= cutoff:
            _, task_id = self._finished.popleft()
            self._count(self._records.pop(task_id), -1)
            self._on_removed(task_id)
            removed += 1
        return removed

    # -- queries ---------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskRecord[R]:
        """A snapshot of the task; NotFoundError if unknown or cleaned up."""
        return self._snapshot(self._get(task_id))

    def get_task_result(self, task_id: str) -> dict[str, Any] | None:
        """The seed's view of a task as a plain dict; None if unknown or cleaned up."""
        record = self._records.get(task_id)
        if record is None:
            return None
        return {
            "task_id": record.task_id,
            "order_req_id": record.order_req_id,
            "priority": record.priority,
            "status": record.status.value,
            "success": record.status is TaskStatus.SUCCEEDED,
            "result": record.result,
            "error": record.error,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "completed_at": record.completed_at,
            "deadline": record.deadline,
        }

    async def watch(self, task_id: str) -> AsyncIterator[TaskRecord[R]]:
        """Yield the task as it is now, then after every change, ending after a
        final state. NotFoundError (from the first step) if unknown."""
        async for state in self._watch.follow(task_id, self._get(task_id)):
            yield state

    def get_queue_stats(self) -> dict[str, int]:
        """Exact counts, read from counters kept up to date on every change."""
        return {
            "priority_queue_size": self._by_status[TaskStatus.QUEUED],
            "active_tasks": self._by_status[TaskStatus.RUNNING],
            "completed_tasks": sum(self._by_status[s] for s in _FINAL),
            "max_concurrent_tasks": self.max_concurrent_tasks,
        }

    # -- internals -------------------------------------------------------------

    def _get(self, task_id: str) -> TaskRecord[R]:
        record = self._records.get(task_id)
        if record is None:
            raise NotFoundError("task", task_id)
        return record

    def _is_queued(self, task_id: str) -> bool:
        record = self._records.get(task_id)
        return record is not None and record.status is TaskStatus.QUEUED

    def _count(self, record: TaskRecord[R], delta: int) -> None:
        self._by_status[record.status] += delta
        if record.status is TaskStatus.QUEUED:
            self._queued_by_priority[record.priority] += delta

    def _set_status(self, record: TaskRecord[R], status: TaskStatus) -> None:
        self._count(record, -1)
        record.status = status
        self._count(record, +1)
        self._publish(record)

    def _disarm_deadline(self, task_id: str) -> None:
        timer = self._deadline_timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

    def _finish(self, record: TaskRecord[R], status: TaskStatus, error: str) -> None:
        self._disarm_deadline(record.task_id)
        record.error = error
        record.completed_at = self._clock()
        self._finished.append((record.completed_at, record.task_id))
        self._set_status(record, status)

    def _stop_task(self, record: TaskRecord[R], status: TaskStatus, error: str) -> None:
        """End an unfinished task with `status`, cancelling its task function if
        it runs; the worker that runs it waits for it and records nothing."""
        self._finish(record, status, error)
        attempt = self._running.get(record.task_id)
        if attempt is not None:
            attempt.cancel()

    def _deadline_passed(self, task_id: str) -> None:
        self._deadline_timers.pop(task_id, None)
        if self._is_queued(task_id):
            self._finish(
                self._records[task_id], TaskStatus.TIMED_OUT, "deadline passed while queued"
            )

    def _publish(self, record: TaskRecord[R]) -> None:
        self._watch.publish(record.task_id, record)

    @staticmethod
    def _snapshot(record: TaskRecord[R]) -> TaskRecord[R]:
        return copy.copy(record)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            if not self._is_queued(item.task_id):
                continue  # cancelled or timed out while it waited
            record = self._records[item.task_id]
            # The deadline timer may not have fired yet, or may belong to a
            # loop the pool no longer runs on.
            if item.deadline is not None and item.deadline <= self._clock():
                self._finish(record, TaskStatus.TIMED_OUT, "deadline passed while queued")
                continue
            await self._run(item, record)

    async def _run(self, item: PriorityTask[R], record: TaskRecord[R]) -> None:
        # From here on the deadline is enforced by the wait below.
        self._disarm_deadline(record.task_id)
        record.started_at = self._clock()
        self._set_status(record, TaskStatus.RUNNING)
        attempt = asyncio.create_task(
            _call(item.task_func, item.kwargs), name=f"priority-task-{record.task_id}"
        )
        self._running[record.task_id] = attempt
        timeout = None if item.deadline is None else max(item.deadline - record.started_at, 0.0)
        try:
            done, _ = await asyncio.wait({attempt}, timeout=timeout)
            if not done:
                if record.status is TaskStatus.RUNNING:
                    self._stop_task(record, TaskStatus.TIMED_OUT, "deadline passed while running")
                await asyncio.wait({attempt})
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            self._running.pop(record.task_id, None)
        if record.status is not TaskStatus.RUNNING:
            return  # cancel_task, stop() or the deadline already recorded the end
        if attempt.cancelled():
            self._finish(record, TaskStatus.FAILED, "the task function was cancelled")
        elif (exc := attempt.exception()) is not None:
            log.warning(
                "task %s of order %s failed", record.task_id, record.order_req_id, exc_info=exc
            )
            self._finish(record, TaskStatus.FAILED, f"{type(exc).__name__}: {exc}")
        else:
            record.result = attempt.result()
            self._finish(record, TaskStatus.SUCCEEDED, "")

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            removed = self.cleanup_old_results()
            if removed:
                log.info("cleanup removed %d finished tasks", removed)


async def _call(task_func: TaskFunc[R], kwargs: dict[str, Any]) -> R:
    # Calling inside the attempt's own task means a task_func that raises
    # before returning an awaitable fails its task, not the worker.
    return await task_func(**kwargs)


#: The seed's shared pool; services construct their own.
priority_queue_manager: PriorityQueueManager[Any] = PriorityQueueManager()
