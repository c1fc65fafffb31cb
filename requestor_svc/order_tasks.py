"""Order requests as tasks in the priority pool: placed once per request id, each
answered with the progress its follow collected.

Given await_start, a task waits for its order's first event outside the pool's
slots (the pool's ready_when), so tasks for orders that have not started, or
never will, hold no slot that a started order could use. Every task has a
deadline: its placement's timeout, or default_timeout.

The pool owns every task's record, its job (placement, request id, progress)
included, and, given a store, keeps them across restarts. This keeps only an
index from request id to task, rebuilt from the pool on start and dropped in
the same step as the pool's retention sweep removes a task.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from queues.errors import RequestConflictError
from queues.keyed_lock import KeyedLock
from queues.priority_task_pool import PriorityQueueManager, TaskRecord
from queues.storage import Store
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JobArgsCodec, OrderJob, Placement, ProgressCodec

#: What a task runs: collects the order's events into the progress it is given.
Follow = Callable[[OrderProgress], Awaitable[OrderProgress]]

#: What a task waits for before it takes a slot: returns once the order has
#: had an event (taken into the progress it is given).
AwaitStart = Callable[[OrderProgress], Awaitable[None]]

#: Why a task that timed out waiting for its first event did: the end of
#: "deadline passed while …".
WAITING_FOR_START = "waiting for its order's first event"

#: The name the pool knows the order tasks' function by. The store keeps it
#: with every queued task, so it must not change.
FOLLOW_ORDER = "follow-order"


@dataclass(frozen=True, slots=True)
class PlacedTask:
    task_id: str
    #: Tasks that were waiting ahead of it when it was placed.
    queue_position: int


@dataclass(frozen=True, slots=True)
class OrderTask:
    """A task as it is now: the pool's record, its placement and a copy of its progress."""

    record: TaskRecord[OrderProgress]
    placement: Placement
    progress: OrderProgress


@dataclass(frozen=True, slots=True)
class PoolStats:
    priority_queue_size: int
    active_tasks: int
    completed_tasks: int
    max_concurrent_tasks: int
    #: Of priority_queue_size, those waiting for their order's first event.
    waiting_tasks: int


class OrderTasks:
    """The requestor's tasks, run by a PriorityQueueManager it owns."""

    def __init__(
        self,
        follow: Follow,
        *,
        max_concurrent_tasks: int,
        retention: float,
        sweep_interval: float,
        default_timeout: float | None,
        await_start: AwaitStart | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """default_timeout: seconds a task placed without a timeout has before
        it times out (None: no deadline). await_start: what a task waits for,
        without a slot, before it follows its order (None: nothing)."""
        self._follow = follow
        self._default_timeout = default_timeout
        self._clock = clock
        self._pool: PriorityQueueManager[OrderProgress] = PriorityQueueManager(
            max_concurrent_tasks,
            retention=retention,
            sweep_interval=sweep_interval,
            store=store,
            task_funcs={FOLLOW_ORDER: self._run},
            args_codec=JobArgsCodec(),
            result_codec=ProgressCodec(),
            partial_result=_progress_so_far,
            clock=clock,
            on_removed=self._forget,
            ready_when=None if await_start is None else _job_awaiting(await_start),
            waiting_for=WAITING_FOR_START,
        )
        self._task_by_request_id: dict[str, str] = {}
        self._placing = KeyedLock()

    async def start(self) -> None:
        """Run the tasks. With a store, the first start first brings back every
        task it holds (PriorityQueueManager.start says how); StoreError if it
        cannot be read."""
        await self._pool.start()
        for record in self._pool.tasks():
            request_id = _job(record.kwargs).request_id
            if request_id:
                self._task_by_request_id[request_id] = record.task_id

    async def stop(self) -> None:
        """Refuse new orders and stop the running tasks: they are QUEUED again
        (in the store they never stopped being) and follow their orders again
        on the next start, in this process or the next."""
        await self._pool.stop()

    async def place(self, placement: Placement, request_id: str = "") -> PlacedTask:
        """Queue a task following the order and answer once it is queued (with
        a store: committed); or, for a request id already used for this same
        placement, answer that first task and create nothing.

        RequestConflictError if request_id was used for a different placement;
        ClosedError while stopped; StoreError if the task could not be
        committed, and then nothing was placed.
        """
        if not request_id:
            return await self._add(placement, "")
        # Shielded: a caller going away must not leave a task added whose
        # request id was never recorded, or a repeat would add a second one.
        return await asyncio.shield(self._place_once(placement, request_id))

    def result(self, task_id: str) -> OrderTask:
        """The task as it is now; NotFoundError if unknown or removed after retention."""
        return self._view(self._pool.get_task(task_id))

    async def cancel(self, task_id: str) -> OrderTask:
        """End a queued or running task CANCELLED, keeping what it collected,
        once that is committed.

        InvalidStateError if it is already final; NotFoundError if unknown;
        StoreError if the end could not be committed (the task goes on).
        """
        return self._view(await self._pool.cancel_task(task_id))

    def stats(self) -> PoolStats:
        return PoolStats(**self._pool.get_queue_stats(), waiting_tasks=self._pool.waiting_count)

    async def _place_once(self, placement: Placement, request_id: str) -> PlacedTask:
        # One placement per request id at a time: the first adds the task,
        # the others wait and answer it.
        async with self._placing.hold(request_id):
            first = self._task_by_request_id.get(request_id)
            if first is None:
                placed = await self._add(placement, request_id)
                self._task_by_request_id[request_id] = placed.task_id
                return placed
            record = self._pool.get_task(first)
            if _job(record.kwargs).placement != placement:
                raise RequestConflictError(request_id)
            return PlacedTask(first, record.queue_position)

    async def _add(self, placement: Placement, request_id: str) -> PlacedTask:
        timeout = self._default_timeout if placement.timeout is None else placement.timeout
        deadline = None if timeout is None else self._clock() + timeout
        job = OrderJob(placement, request_id, OrderProgress(placement.order_req_id))
        task_id = await self._pool.add_priority_task(
            placement.order_req_id, FOLLOW_ORDER, placement.priority, deadline=deadline, job=job
        )
        return PlacedTask(task_id, self._pool.get_task(task_id).queue_position)

    async def _run(self, job: OrderJob) -> OrderProgress:
        return await self._follow(job.progress)

    def _view(self, record: TaskRecord[OrderProgress]) -> OrderTask:
        job = _job(record.kwargs)
        # A final task's progress is its recorded result, the one the store
        # holds; until then, what the follow has collected so far.
        progress = job.progress if record.result is None else record.result
        return OrderTask(record, job.placement, progress.snapshot())

    def _forget(self, record: TaskRecord[OrderProgress]) -> None:
        self._task_by_request_id.pop(_job(record.kwargs).request_id, None)


def _job(kwargs: dict[str, Any]) -> OrderJob:
    job: OrderJob = kwargs["job"]
    return job


def _progress_so_far(kwargs: dict[str, Any]) -> OrderProgress:
    return _job(kwargs).progress.snapshot()


def _job_awaiting(await_start: AwaitStart) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """The pool's ready_when: await_start on the task's progress."""

    def ready_when(kwargs: dict[str, Any]) -> Awaitable[None]:
        return await_start(_job(kwargs).progress)

    return ready_when
