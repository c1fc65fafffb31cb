"""What the requestor's servicer and service need of its tasks, whichever keeps them.

Two implementations: OrderTasks, the journaled pool of one process (store
sqlite or memory), answers from its memory, so JournaledTasks only lifts its
answers into this shape; CoreTasks (core_tasks.py, store postgres) keeps every
task in a JobStore that replicas share, so each answer is a read of it.
"""

from typing import Protocol

from requestor_svc.order_job import Placement
from requestor_svc.order_tasks import OrderTask, OrderTasks, PlacedTask, PoolStats


class RequestorTasks(Protocol):
    async def start(self) -> None:
        """Run the tasks: follow their orders and sweep old results."""

    async def stop(self) -> None:
        """Refuse new orders and stop following; unfinished tasks run again later."""

    async def place(self, placement: Placement, request_id: str = "") -> PlacedTask:
        """Queue a task following the order; a request id already used for the
        same placement answers that first task, and RequestConflictError for
        another placement. ClosedError while stopped."""

    async def result(self, task_id: str) -> OrderTask:
        """The task as it is now; NotFoundError if unknown or removed."""

    async def cancel(self, task_id: str) -> OrderTask:
        """End a queued or running task CANCELLED, keeping what it collected.
        InvalidStateError if it is final already; NotFoundError if unknown."""

    async def stats(self) -> PoolStats: ...


class JournaledTasks:
    """OrderTasks as RequestorTasks."""

    def __init__(self, tasks: OrderTasks) -> None:
        self._tasks = tasks

    async def start(self) -> None:
        await self._tasks.start()

    async def stop(self) -> None:
        await self._tasks.stop()

    async def place(self, placement: Placement, request_id: str = "") -> PlacedTask:
        return await self._tasks.place(placement, request_id)

    async def result(self, task_id: str) -> OrderTask:
        return self._tasks.result(task_id)

    async def cancel(self, task_id: str) -> OrderTask:
        return await self._tasks.cancel(task_id)

    async def stats(self) -> PoolStats:
        return self._tasks.stats()
