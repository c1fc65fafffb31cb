"""The seed's unified facade over the priority task pool, the order queues and,
optionally, a message queue. Each of them also works on its own; the facade
only delegates and combines their stats."""

from __future__ import annotations

import dataclasses
from typing import Any

from queues.message_queue import MessageQueue
from queues.order_queues import (
    OrderEvent,
    OrderEventKind,
    OrderQueue,
    OrderQueueManager,
    order_queue_manager,
)
from queues.priority_task_pool import (
    PriorityQueueManager,
    PriorityTask,
    TaskFunc,
    TaskPriority,
    priority_queue_manager,
)

__all__ = ["PriorityTask", "QueueManager", "TaskPriority", "queue_manager"]


class QueueManager:
    """Holds a pool and an order manager (new ones unless given) and, if
    given, a message queue; start() and stop() start and stop all it holds."""

    def __init__(
        self,
        priority_manager: PriorityQueueManager[Any] | None = None,
        order_manager: OrderQueueManager[Any] | None = None,
        message_queue: MessageQueue[Any, Any] | None = None,
    ) -> None:
        self.priority_manager = (
            PriorityQueueManager() if priority_manager is None else priority_manager
        )
        self.order_manager = OrderQueueManager() if order_manager is None else order_manager
        self.message_queue = message_queue

    async def start(self) -> None:
        """Start everything held; each part ignores a second start."""
        if self.message_queue is not None:
            await self.message_queue.start()
        await self.order_manager.start()
        await self.priority_manager.start()

    async def stop(self) -> None:
        """Stop the pool first (its tasks may use the others), then the order
        manager, then close the message queue, which cannot be restarted."""
        await self.priority_manager.stop()
        await self.order_manager.stop()
        if self.message_queue is not None:
            await self.message_queue.stop()

    async def add_priority_task(
        self,
        order_req_id: str,
        task_func: TaskFunc[Any],
        priority: TaskPriority = TaskPriority.MEDIUM,
        *,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> str:
        """PriorityQueueManager.add_priority_task: the new task's id."""
        return await self.priority_manager.add_priority_task(
            order_req_id, task_func, priority, deadline=deadline, **kwargs
        )

    def get_task_result(self, task_id: str) -> dict[str, Any] | None:
        """PriorityQueueManager.get_task_result: a dict, or None if unknown."""
        return self.priority_manager.get_task_result(task_id)

    def cleanup_old_results(self, max_age_seconds: float | None = None) -> int:
        """PriorityQueueManager.cleanup_old_results: how many tasks were removed."""
        return self.priority_manager.cleanup_old_results(max_age_seconds)

    async def add_to_order_queue(
        self,
        order_req_id: str,
        message: str,
        *,
        kind: OrderEventKind = OrderEventKind.PROPOSAL_NEW,
        proposal_id: str | None = None,
        data: Any = None,
        error: str = "",
    ) -> OrderEvent[Any]:
        """OrderQueueManager.add_to_order_queue: the appended event."""
        return await self.order_manager.add_to_order_queue(
            order_req_id, message, kind=kind, proposal_id=proposal_id, data=data, error=error
        )

    async def get_from_order_queue(
        self,
        order_req_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the seed's signature
    ) -> str | None:
        """OrderQueueManager.get_from_order_queue: the next text, or None."""
        return await self.order_manager.get_from_order_queue(order_req_id, timeout)

    def get_order_queue(self, order_req_id: str) -> OrderQueue[Any]:
        """OrderQueueManager.get_order_queue: the order's log, created if need be."""
        return self.order_manager.get_order_queue(order_req_id)

    def has_order_queue(self, order_req_id: str) -> bool:
        """OrderQueueManager.has_order_queue: whether the order has a log."""
        return self.order_manager.has_order_queue(order_req_id)

    async def remove_order_queue(self, order_req_id: str) -> bool:
        """OrderQueueManager.remove_order_queue: whether there was a log to remove."""
        return await self.order_manager.remove_order_queue(order_req_id)

    def get_queue_stats(self) -> dict[str, Any]:
        """The seed's combined counters, plus 'message_queue' (its QueueStats as
        a dict) when a message queue is held."""
        tasks = self.priority_manager.get_queue_stats()
        orders = self.order_manager.get_queue_stats()
        stats: dict[str, Any] = {
            "priority_queue_size": tasks["priority_queue_size"],
            "active_tasks": tasks["active_tasks"],
            "completed_tasks": tasks["completed_tasks"],
            "order_queues_count": orders["order_queues_count"],
            "order_queue_details": orders["queues"],
        }
        if self.message_queue is not None:
            stats["message_queue"] = dataclasses.asdict(self.message_queue.stats())
        return stats


#: The seed's shared facade over the shared pool and order manager.
queue_manager = QueueManager(priority_queue_manager, order_queue_manager)
