"""Order requests as tasks in the priority pool: placed once per request id, each
answered with the progress its follow collected.

The pool keeps each task's record; this keeps what the pool does not (how the
order was placed, the progress, the request id) and drops it in the same step
as the pool's retention sweep removes the record, so neither outlives the other.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from queues.errors import RequestConflictError
from queues.priority_task_pool import PriorityQueueManager, TaskPriority, TaskRecord
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from requestor_svc.order_follower import OrderProgress

#: What a task runs: collects the order's events into the progress it is given.
Follow = Callable[[OrderProgress], Awaitable[OrderProgress]]


@dataclass(frozen=True, slots=True)
class Placement:
    """An order request as placed; two equal placements are the same request."""

    order_req_id: str
    priority: TaskPriority
    #: Seconds after placing it that the task times out; None: never.
    timeout: float | None
    #: Kept with the result and never looked into.
    submission: quote_pb.Submission | None


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


@dataclass(frozen=True, slots=True)
class _Kept:
    placement: Placement
    progress: OrderProgress
    request_id: str


class OrderTasks:
    """The requestor's tasks, run by a PriorityQueueManager it owns."""

    def __init__(
        self,
        follow: Follow,
        *,
        max_concurrent_tasks: int,
        result_retention: float,
        cleanup_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._follow = follow
        self._clock = clock
        self._pool: PriorityQueueManager[OrderProgress] = PriorityQueueManager(
            max_concurrent_tasks,
            result_retention=result_retention,
            cleanup_interval=cleanup_interval,
            clock=clock,
            on_removed=self._forget,
        )
        self._kept: dict[str, _Kept] = {}
        self._task_by_request_id: dict[str, str] = {}

    async def start(self) -> None:
        await self._pool.start()

    async def stop(self) -> None:
        """Refuse new orders and end every running task CANCELLED."""
        await self._pool.stop()

    async def place(self, placement: Placement, request_id: str = "") -> PlacedTask:
        """Queue a task following the order, or, for a request id already used
        for this same placement, answer that first task and create nothing.

        RequestConflictError if request_id was used for a different placement;
        ClosedError while stopped.
        """
        if request_id and (first := self._task_by_request_id.get(request_id)) is not None:
            if self._kept[first].placement != placement:
                raise RequestConflictError(request_id)
            return PlacedTask(first, self._pool.get_task(first).queue_position)
        progress = OrderProgress(placement.order_req_id)
        deadline = None if placement.timeout is None else self._clock() + placement.timeout
        # add_priority_task never suspends, so no other place() can come in
        # between the request-id check above and the bookkeeping below.
        task_id = await self._pool.add_priority_task(
            placement.order_req_id,
            self._follow,
            placement.priority,
            deadline=deadline,
            progress=progress,
        )
        self._kept[task_id] = _Kept(placement, progress, request_id)
        if request_id:
            self._task_by_request_id[request_id] = task_id
        return PlacedTask(task_id, self._pool.get_task(task_id).queue_position)

    def result(self, task_id: str) -> OrderTask:
        """The task as it is now; NotFoundError if unknown or removed after retention."""
        return self._view(self._pool.get_task(task_id))

    def cancel(self, task_id: str) -> OrderTask:
        """End a queued or running task CANCELLED, keeping what it collected.

        InvalidStateError if it is already final; NotFoundError if unknown.
        """
        return self._view(self._pool.cancel_task(task_id))

    def stats(self) -> PoolStats:
        return PoolStats(**self._pool.get_queue_stats())

    def _view(self, record: TaskRecord[OrderProgress]) -> OrderTask:
        kept = self._kept[record.task_id]
        return OrderTask(record, kept.placement, kept.progress.snapshot())

    def _forget(self, task_id: str) -> None:
        kept = self._kept.pop(task_id)
        if kept.request_id:
            del self._task_by_request_id[kept.request_id]
