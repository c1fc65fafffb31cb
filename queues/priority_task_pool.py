"""A pool that runs async task functions in priority order, a bounded number at once.

Ordering: HIGH before MEDIUM before LOW, FIFO (submission order) within a
priority. Exactly max_concurrent_tasks workers take tasks, and a worker takes
the best waiting task only once it is free, so nothing is claimed ahead of
time: a HIGH task submitted while every slot is busy gets the next free slot.
A slot is free again once the task function has actually returned, so a
cancelled task that is still unwinding keeps its slot until it has.

Readiness: given ready_when, a queued task first waits for it, outside the
slots, and joins the line for a slot only once it has returned; so a task that
cannot make progress yet (its order has not started, say) holds no slot while
others could use one. The line is then in priority order among the ready
tasks. A ready_when that raises fails the task; the deadline and cancel_task
end a waiting task like a queued one. Readiness is not written: after a
restart, or a stop(), every queued task waits for it again.

Durability: given a Store, the pool writes a task when it is queued and again
when it ends, and commits each write before the change becomes visible; a
change whose commit fails leaves the pool as it was (a worker tries the end
of a task again until it is written). Commit and change run as one shielded
step, so a caller that goes away cannot split them, and a task's end is
decided and written under the task's lock, so that of two ends racing (a
cancel and the deadline, say) exactly one is recorded. RUNNING is never
written: after a crash, or a stop(), a task that was running is QUEUED again
and runs again from the start, with its id, priority, place in line and
deadline. A function cannot be written, so a durable pool runs registered
functions only, named in task_funcs.

Without a store nothing is written and no method suspends (add_priority_task
and cancel_task are async for the durable case), so each one is atomic with
respect to the others on the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from queues.backoff import Backoff
from queues.codec import Codec, JsonCodec
from queues.errors import ClosedError, InvalidStateError, NotFoundError, TaskFailedError
from queues.ids import random_id
from queues.keyed_lock import KeyedLock
from queues.records import load_records
from queues.shielded import ShieldedSteps
from queues.state_watch import StateWatch
from queues.storage import Change, Store, StoreError
from queues.task import PriorityTask, R, TaskFunc, TaskPriority, TaskRecord, TaskStatus
from queues.task_records import COLLECTION, StoredTask, TaskCodec, delete

__all__ = [
    "PriorityQueueManager",
    "PriorityTask",
    "TaskFunc",
    "TaskPriority",
    "TaskRecord",
    "TaskStatus",
    "priority_queue_manager",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Waits before trying again to record a task's end that the store refused. The
#: task keeps its slot, and shows RUNNING, until its end is recorded.
_END_RETRY = Backoff(base=0.05, cap=1.0)


@dataclass(frozen=True, slots=True)
class _End(Generic[R]):
    """How a task ends."""

    status: TaskStatus
    error: str = ""
    #: What the task function returned; used for SUCCEEDED only.
    result: R | None = None


_TIMED_OUT_QUEUED: _End[Any] = _End(TaskStatus.TIMED_OUT, "deadline passed while queued")
_TIMED_OUT_RUNNING: _End[Any] = _End(TaskStatus.TIMED_OUT, "deadline passed while running")


def _while(status: TaskStatus, end: _End[R]) -> Callable[[TaskRecord[R]], _End[R] | None]:
    """End the task so if it is still in status; leave it alone otherwise."""
    return lambda record: end if record.status is status else None


class PriorityQueueManager(Generic[R]):
    """The pool. Tasks may be added before start() (with a store, only after
    the first start(), which rebuilds the pool from the store); they wait until
    it runs."""

    def __init__(
        self,
        max_concurrent_tasks: int = 10,
        *,
        retention: float = 3600.0,
        sweep_interval: float = 60.0,
        store: Store | None = None,
        task_funcs: Mapping[str, TaskFunc[R]] | None = None,
        args_codec: Codec[dict[str, Any]] | None = None,
        result_codec: Codec[R] | None = None,
        partial_result: Callable[[dict[str, Any]], R] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = random_id,
        on_removed: Callable[[TaskRecord[R]], None] = lambda record: None,
        ready_when: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
        waiting_for: str = "waiting to be ready",
    ) -> None:
        """store: where tasks are kept (None: nowhere, as the seed did).
        task_funcs: functions by name, which add_priority_task accepts in place
        of a function (and a pool with a store requires). args_codec and
        result_codec: how a task's kwargs and result are written (default:
        they are JSON already). partial_result: the result recorded for a task
        that ends other than by returning (failed, timed out, cancelled), read
        from its kwargs when it ends, so that what it had collected is kept;
        it must return a value that does not change afterwards (a copy).
        ready_when: awaited with a queued task's kwargs, while the pool runs,
        before the task joins the line for a slot (None: at once); see
        Readiness above. waiting_for: what a task waiting for it does, for the
        error of one whose deadline passes meanwhile ("deadline passed while
        <waiting_for>")."""
        if max_concurrent_tasks < 1:
            raise ValueError(f"max_concurrent_tasks must be at least 1; got {max_concurrent_tasks}")
        if retention < 0 or sweep_interval <= 0:
            raise ValueError("retention must not be negative and sweep_interval must be positive")
        self.max_concurrent_tasks = max_concurrent_tasks
        self.retention = retention
        self._sweep_interval = sweep_interval
        self._store = store
        self._task_funcs = dict(task_funcs or {})
        self._codec: TaskCodec[R] = TaskCodec(
            args_codec or JsonCodec(), result_codec or JsonCodec()
        )
        self._partial_result = partial_result
        self._clock = clock
        self._new_id = new_id
        # Called with each task the sweep removes, once it is gone, so whoever
        # keeps data per task drops it in step with the pool. Must not raise.
        self._on_removed = on_removed
        self._ready_when = ready_when
        self._timed_out_waiting: _End[R] = _End(
            TaskStatus.TIMED_OUT, f"deadline passed while {waiting_for}"
        )

        self._records: dict[str, TaskRecord[R]] = {}
        # The queue item of every unfinished task, to queue it again on start().
        self._items: dict[str, PriorityTask[R]] = {}
        self._seq = itertools.count(1)
        # May hold entries of tasks that were cancelled or timed out while
        # queued: workers skip them when they reach the top.
        self._queue: asyncio.PriorityQueue[PriorityTask[R]] = asyncio.PriorityQueue()
        self._by_status: Counter[TaskStatus] = Counter()
        self._queued_by_priority: Counter[TaskPriority] = Counter()
        # Tasks being committed: ahead in line of any task added after them.
        self._adding_by_priority: Counter[TaskPriority] = Counter()
        self._deadline_timers: dict[str, asyncio.TimerHandle] = {}
        self._running: dict[str, asyncio.Task[R]] = {}
        # Queued tasks waiting for ready_when, outside the slots.
        self._waiting: dict[str, asyncio.Task[None]] = {}
        # (completed_at, id) in the order tasks became final: the sweep pops from
        # the left while entries are old enough.
        self._finished: deque[tuple[float, str]] = deque()
        self._watch: StateWatch[TaskRecord[R]] = StateWatch(lambda r: r.status.is_final)
        self._locks = KeyedLock()
        # Changes under way that no caller may cut short: stop() waits for them.
        self._steps = ShieldedSteps()

        self._workers: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        # With a store, nothing is accepted before start() has loaded it.
        self._loaded = False
        self._accepting = store is None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start max_concurrent_tasks workers and the periodic retention sweep, and
        accept tasks again after stop(). Does nothing if already started.

        With a store, the first start() first rebuilds the pool from it: final
        tasks as they were written; every other task QUEUED, in its old place
        in line, or TIMED_OUT (committed) if its deadline passed meanwhile.
        Raises StoreError if the store cannot be read or holds a task this
        program cannot read; the pool is then unchanged.
        """
        if self._workers:
            return
        if self._store is not None and not self._loaded:
            await self._load(self._store)
            self._loaded = True
        self._accepting = True
        # An asyncio queue binds to the loop that first waits on it; a fresh one
        # per start lets a pool (such as the module-level default) be started on
        # another loop after stop().
        self._queue = asyncio.PriorityQueue()
        self._workers = [
            asyncio.create_task(self._work(), name=f"priority-task-worker-{n}")
            for n in range(self.max_concurrent_tasks)
        ]
        self._sweeper = asyncio.create_task(self._sweep_periodically(), name="priority-task-sweep")
        for item in self._items.values():
            self._line_up(item)
            self._arm_deadline(item)

    async def stop(self) -> None:
        """Refuse new tasks, stop the workers and hand every RUNNING task back
        to QUEUED (its task function is cancelled and awaited), as a crash
        would: a later start() runs it again, and nothing is written for it, so
        with a store the next process does. Ends being committed are finished
        first. QUEUED tasks stay QUEUED. Does nothing if already stopped."""
        self._accepting = False
        if not self._workers:
            return
        for timer in self._deadline_timers.values():
            timer.cancel()
        self._deadline_timers.clear()
        attempts = [*self._running.values(), *self._waiting.values()]
        self._waiting.clear()
        for attempt in attempts:
            attempt.cancel()
        for worker in self._workers:
            worker.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(
            *self._workers,
            *attempts,
            *([self._sweeper] if self._sweeper else []),
            return_exceptions=True,
        )
        await self._steps.wait()
        for task_id in self._items:
            record = self._records[task_id]
            if record.status is TaskStatus.RUNNING:
                record.started_at = None
                self._set_status(record, TaskStatus.QUEUED)
        self._workers = []
        self._sweeper = None

    # -- commands --------------------------------------------------------------

    async def add_priority_task(
        self,
        order_req_id: str,
        task_func: TaskFunc[R] | str,
        priority: TaskPriority = TaskPriority.MEDIUM,
        *,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> str:
        """Queue task_func(**kwargs) and return the new task's id once it is
        queued (with a store, committed).

        task_func is a function or the name it has in task_funcs; a pool with a
        store takes names only, and kwargs args_codec can encode. `deadline`
        is absolute, on the pool's clock. The names order_req_id, task_func,
        priority and deadline cannot be passed on to task_func. Raises
        ClosedError after stop() until the next start() (a task accepted then
        would silently wait for a restart that may never come) and, with a
        store, before the first start(); ValueError for an unknown name or an
        unnamed function given to a pool with a store; StoreError if the task
        could not be committed, and then nothing was queued.
        """
        if not self._accepting:
            raise ClosedError("priority task pool")
        func, func_name = self._resolve(task_func)
        priority = TaskPriority(priority)
        now = self._clock()
        item: PriorityTask[R] = PriorityTask(
            priority=priority,
            seq=next(self._seq),
            task_id=self._new_id(),
            order_req_id=order_req_id,
            task_func=func,
            kwargs=kwargs,
            created_at=now,
            deadline=deadline,
            func_name=func_name,
        )
        record: TaskRecord[R] = TaskRecord(
            task_id=item.task_id,
            order_req_id=order_req_id,
            priority=priority,
            status=TaskStatus.QUEUED,
            created_at=now,
            deadline=deadline,
            queue_position=sum(
                self._queued_by_priority[p] + self._adding_by_priority[p]
                for p in TaskPriority
                if p >= priority
            ),
            kwargs=kwargs,
        )
        changes = self._puts(item, record)
        self._adding_by_priority[priority] += 1
        return await self._shielded(self._commit_then_queue(item, record, changes))

    async def cancel_task(self, task_id: str) -> TaskRecord[R]:
        """End a QUEUED or RUNNING task CANCELLED and return it, once that is
        committed; a running task function is cancelled then, and its slot is
        freed once it has unwound.

        InvalidStateError if the task is final, NotFoundError if unknown,
        StoreError if the end could not be committed (the task goes on as it was).
        """
        self._get(task_id)

        def cancel(record: TaskRecord[R]) -> _End[R]:
            if record.status.is_final:
                raise InvalidStateError("task", task_id, record.status.value, "cancel")
            return _End(TaskStatus.CANCELLED, f"cancelled while {record.status.value}")

        return await self._end(task_id, cancel, retry=False)

    async def sweep_expired(self, max_age_seconds: float | None = None) -> int:
        """Remove tasks that have been final for at least max_age_seconds
        (default: retention): deleted from the store in one commit, then
        forgotten. Returns how many were removed; StoreError if the commit
        failed, and then none was."""
        old = self._take_old(max_age_seconds)
        if not old:
            return 0
        return await self._shielded(self._delete_then_forget(old))

    def cleanup_old_results(self, max_age_seconds: float | None = None) -> int:
        """The seed's cleanup, for a pool without a store: sweep_expired
        without awaiting. A pool with a store must commit its removals first,
        so it raises TypeError there."""
        if self._store is not None:
            raise TypeError("a pool with a store removes results with sweep_expired()")
        old = self._take_old(max_age_seconds)
        for _, task_id in old:
            self._forget(task_id)
        return len(old)

    # -- queries ---------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskRecord[R]:
        """A snapshot of the task; NotFoundError if unknown or cleaned up."""
        return self._snapshot(self._get(task_id))

    def tasks(self) -> list[TaskRecord[R]]:
        """A snapshot of every task the pool holds, finished ones included."""
        return [self._snapshot(record) for record in self._records.values()]

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
            "completed_tasks": sum(n for s, n in self._by_status.items() if s.is_final),
            "max_concurrent_tasks": self.max_concurrent_tasks,
        }

    # -- changes ----------------------------------------------------------------

    async def _shielded(self, change: Coroutine[Any, Any, T]) -> T:
        """Run change to its end even if the caller is cancelled, so that a
        commit is never split from what it makes visible. Without a store
        nothing is committed, and change runs inline, never suspending."""
        if self._store is None:
            return await change
        return await self._steps.run(change)

    def _puts(self, item: PriorityTask[R], record: TaskRecord[R]) -> list[Change]:
        """What to commit for the task as record has it: nothing without a store."""
        return [] if self._store is None else [self._codec.put(item, record)]

    async def _commit(self, changes: list[Change]) -> None:
        if self._store is not None and changes:
            await self._store.commit(changes)

    async def _commit_then_queue(
        self, item: PriorityTask[R], record: TaskRecord[R], changes: list[Change]
    ) -> str:
        try:
            await self._commit(changes)
        finally:
            self._adding_by_priority[item.priority] -= 1
        self._records[record.task_id] = record
        self._items[record.task_id] = item
        self._count(record, +1)
        self._line_up(item)
        self._arm_deadline(item)
        return record.task_id

    async def _end(
        self,
        task_id: str,
        decide: Callable[[TaskRecord[R]], _End[R] | None],
        *,
        retry: bool,
    ) -> TaskRecord[R]:
        """End the task as decide(record) says, decided once the task's lock is
        held: commit the end, then make it visible, cancelling a running task
        function. Returns a snapshot of the task as it then is.

        decide returns None to leave the task alone. Without retry a failed
        commit raises StoreError, leaving the task as it was; with retry it is
        tried again until it succeeds or the pool stops.
        """
        return await self._shielded(self._end_under_lock(task_id, decide, retry))

    async def _end_under_lock(
        self,
        task_id: str,
        decide: Callable[[TaskRecord[R]], _End[R] | None],
        retry: bool,
    ) -> TaskRecord[R]:
        async with self._locks.hold(task_id):
            # A final task may have been removed while this waited its turn.
            record = self._get(task_id)
            end = decide(record)
            if end is None:
                return self._snapshot(record)
            completed_at = self._clock()
            ended = copy.copy(record)
            ended.status = end.status
            ended.error = end.error
            ended.completed_at = completed_at
            if end.status is TaskStatus.SUCCEEDED:
                ended.result = end.result
            elif self._partial_result is not None:
                ended.result = self._partial_result(record.kwargs)
            if await self._commit_end(self._items[task_id], ended, retry):
                self._apply_end(record, ended, completed_at)
            return self._snapshot(record)

    async def _commit_end(self, item: PriorityTask[R], ended: TaskRecord[R], retry: bool) -> bool:
        """Whether the end was committed; False only if, retrying, the pool stopped."""
        failures = 0
        while True:
            try:
                await self._commit(self._puts(item, ended))
                return True
            except StoreError as error:
                if not retry:
                    raise
                failures += 1
                if not self._accepting:
                    log.warning(
                        "task %s stopped before its end (%s) could be recorded; "
                        "it runs again after a restart: %s",
                        ended.task_id,
                        ended.status.value,
                        error,
                    )
                    return False
                log.warning(
                    "cannot record the end of task %s (%s) yet; trying again: %s",
                    ended.task_id,
                    ended.status.value,
                    error,
                )
            await asyncio.sleep(_END_RETRY.delay(failures))

    def _apply_end(self, record: TaskRecord[R], ended: TaskRecord[R], completed_at: float) -> None:
        self._disarm_deadline(record.task_id)
        del self._items[record.task_id]
        record.error = ended.error
        record.completed_at = completed_at
        record.result = ended.result
        self._finished.append((completed_at, record.task_id))
        self._set_status(record, ended.status)
        for attempt in (self._running.get(record.task_id), self._waiting.pop(record.task_id, None)):
            if attempt is not None:
                attempt.cancel()

    def _take_old(self, max_age_seconds: float | None) -> list[tuple[float, str]]:
        """Take the entries of tasks final for at least max_age off the
        finished list, so that no other removal takes them too."""
        max_age = self.retention if max_age_seconds is None else max_age_seconds
        if max_age < 0:
            raise ValueError(f"max_age_seconds must not be negative; got {max_age}")
        cutoff = self._clock() - max_age
        old = []
        while self._finished and self._finished[0][0] <= cutoff:
            old.append(self._finished.popleft())
        return old

    async def _delete_then_forget(self, old: list[tuple[float, str]]) -> int:
        try:
            await self._commit([delete(task_id) for _, task_id in old])
        except BaseException:
            self._finished.extendleft(reversed(old))
            raise
        for _, task_id in old:
            self._forget(task_id)
        return len(old)

    def _forget(self, task_id: str) -> None:
        record = self._records.pop(task_id)
        self._count(record, -1)
        self._on_removed(record)

    # -- recovery ----------------------------------------------------------------

    async def _load(self, store: Store) -> None:
        stored = await load_records(store, COLLECTION, self._codec.decode)
        items = {
            task.record.task_id: self._restored_item(task)
            for task in stored
            if not task.record.status.is_final
        }
        now = self._clock()
        lapsed = [
            task.record
            for task in stored
            if task.record.task_id in items
            and task.record.deadline is not None
            and task.record.deadline <= now
        ]
        for record in lapsed:
            record.status = TaskStatus.TIMED_OUT
            record.error = "deadline passed while the pool was stopped"
            record.completed_at = now
            if self._partial_result is not None:
                record.result = self._partial_result(record.kwargs)
        await self._commit([self._codec.put(items[r.task_id], r) for r in lapsed])

        finished = []
        for task in stored:
            record = task.record
            self._records[record.task_id] = record
            self._count(record, +1)
            if record.status.is_final:
                assert record.completed_at is not None
                finished.append((record.completed_at, record.task_id))
            else:
                self._items[record.task_id] = items[record.task_id]
        self._finished.extend(sorted(finished))
        self._seq = itertools.count(max((task.seq for task in stored), default=0) + 1)

    def _restored_item(self, task: StoredTask[R]) -> PriorityTask[R]:
        record = task.record
        func = self._task_funcs.get(task.func_name) or _unregistered(task.func_name)
        return PriorityTask(
            priority=record.priority,
            seq=task.seq,
            task_id=record.task_id,
            order_req_id=record.order_req_id,
            task_func=func,
            kwargs=record.kwargs,
            created_at=record.created_at,
            deadline=record.deadline,
            func_name=task.func_name,
        )

    # -- internals -------------------------------------------------------------

    def _resolve(self, task_func: TaskFunc[R] | str) -> tuple[TaskFunc[R], str]:
        if isinstance(task_func, str):
            func = self._task_funcs.get(task_func)
            if func is None:
                raise ValueError(f"no task function is registered as {task_func!r}")
            return func, task_func
        if self._store is not None:
            raise ValueError(
                "a pool with a store takes task functions by their name in task_funcs, "
                "to find them again after a restart"
            )
        return task_func, ""

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

    def _arm_deadline(self, item: PriorityTask[R]) -> None:
        if item.deadline is None or item.task_id in self._deadline_timers:
            return
        self._deadline_timers[item.task_id] = asyncio.get_running_loop().call_later(
            max(item.deadline - self._clock(), 0.0), self._deadline_passed, item.task_id
        )

    def _disarm_deadline(self, task_id: str) -> None:
        timer = self._deadline_timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

    def _deadline_passed(self, task_id: str) -> None:
        self._deadline_timers.pop(task_id, None)
        if self._is_queued(task_id):
            self._steps.start(self._end(task_id, self._time_out_queued, retry=True))

    def _time_out_queued(self, record: TaskRecord[R]) -> _End[R] | None:
        if record.status is not TaskStatus.QUEUED:
            return None
        return self._timed_out_waiting if record.task_id in self._waiting else _TIMED_OUT_QUEUED

    def _line_up(self, item: PriorityTask[R]) -> None:
        """Put a queued task in line for a slot, or, with ready_when, start
        waiting for it first. Only while the pool runs: start() lines up every
        queued task. (A commit can land while stop() waits for it: a wait
        started then would outlive the stop.)"""
        if not (self._workers and self._accepting):
            return
        if self._ready_when is None:
            self._queue.put_nowait(item)
        elif item.task_id not in self._waiting:
            self._waiting[item.task_id] = asyncio.create_task(
                self._wait_until_ready(item, self._ready_when),
                name=f"priority-task-ready-{item.task_id}",
            )

    async def _wait_until_ready(
        self, item: PriorityTask[R], ready_when: Callable[[dict[str, Any]], Awaitable[object]]
    ) -> None:
        try:
            await ready_when(item.kwargs)
        except Exception as exc:
            # Taken off first, so that recording the end does not cancel this.
            self._waiting.pop(item.task_id, None)
            failed = self._failure(self._records[item.task_id], exc)
            await self._end(item.task_id, _while(TaskStatus.QUEUED, failed), retry=True)
            return
        self._waiting.pop(item.task_id, None)
        if self._is_queued(item.task_id):
            self._queue.put_nowait(item)

    @property
    def waiting_count(self) -> int:
        """Queued tasks waiting for ready_when (also counted as queued)."""
        return len(self._waiting)

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
            # The deadline timer may not have fired yet.
            if item.deadline is not None and item.deadline <= self._clock():
                await self._end(item.task_id, self._time_out_queued, retry=True)
                continue
            # An end being committed holds the lock; once it is recorded, the
            # task is no longer queued.
            async with self._locks.hold(item.task_id):
                attempt = self._begin(item) if self._is_queued(item.task_id) else None
            if attempt is not None:
                await self._run(item, attempt)

    def _begin(self, item: PriorityTask[R]) -> asyncio.Task[R]:
        record = self._records[item.task_id]
        # From here on the deadline is enforced by _run's wait.
        self._disarm_deadline(record.task_id)
        record.started_at = self._clock()
        self._set_status(record, TaskStatus.RUNNING)
        attempt = asyncio.create_task(
            _call(item.task_func, item.kwargs), name=f"priority-task-{record.task_id}"
        )
        self._running[record.task_id] = attempt
        return attempt

    async def _run(self, item: PriorityTask[R], attempt: asyncio.Task[R]) -> None:
        record = self._records[item.task_id]
        timeout = None if item.deadline is None else max(item.deadline - self._clock(), 0.0)
        try:
            done, _ = await asyncio.wait({attempt}, timeout=timeout)
            if not done:
                await self._end(
                    record.task_id, _while(TaskStatus.RUNNING, _TIMED_OUT_RUNNING), retry=True
                )
                await asyncio.wait({attempt})
        except asyncio.CancelledError:
            attempt.cancel()
            raise
        finally:
            self._running.pop(record.task_id, None)
        # Otherwise cancel_task or the deadline has recorded the end already.
        if record.status is TaskStatus.RUNNING:
            await self._end(
                record.task_id,
                _while(TaskStatus.RUNNING, self._outcome(record, attempt)),
                retry=True,
            )

    @classmethod
    def _outcome(cls, record: TaskRecord[R], attempt: asyncio.Task[R]) -> _End[R]:
        if attempt.cancelled():
            return _End(TaskStatus.FAILED, "the task function was cancelled")
        exc = attempt.exception()
        if exc is not None:
            return cls._failure(record, exc)
        return _End(TaskStatus.SUCCEEDED, result=attempt.result())

    @staticmethod
    def _failure(record: TaskRecord[R], exc: BaseException) -> _End[R]:
        # A foreseen failure says all in its message; any other needs its traceback.
        foreseen = isinstance(exc, TaskFailedError)
        log.warning(
            "task %s of order %s failed: %s",
            record.task_id,
            record.order_req_id,
            exc,
            exc_info=None if foreseen else exc,
        )
        return _End(TaskStatus.FAILED, f"{type(exc).__name__}: {exc}")

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                removed = await self.sweep_expired()
            except StoreError as error:
                log.warning(
                    "the retention sweep could not remove finished tasks; trying later: %s", error
                )
                continue
            if removed:
                log.info("retention sweep removed %d finished tasks", removed)


async def _call(task_func: TaskFunc[R], kwargs: dict[str, Any]) -> R:
    # Calling inside the attempt's own task means a task_func that raises
    # before returning an awaitable fails its task, not the worker.
    return await task_func(**kwargs)


def _unregistered(name: str) -> TaskFunc[Any]:
    async def missing(**kwargs: Any) -> Any:
        raise LookupError(f"no task function is registered as {name!r}")

    return missing


#: The seed's shared pool; services construct their own.
priority_queue_manager: PriorityQueueManager[Any] = PriorityQueueManager()
