"""The seed's unified facade: delegation, lifecycle and combined stats."""

import asyncio
import dataclasses

import pytest

from queues import queue_manager as facade_module
from queues.errors import ClosedError
from queues.message import Outcome, Priority
from queues.message_queue import MessageQueue
from queues.order_queues import OrderEventKind, OrderQueueManager, order_queue_manager
from queues.priority_task_pool import (
    PriorityQueueManager,
    PriorityTask,
    TaskPriority,
    TaskStatus,
    priority_queue_manager,
)
from queues.queue_manager import QueueManager, queue_manager


class RecordingPool(PriorityQueueManager[str]):
    def __init__(self, calls: list[str]) -> None:
        super().__init__(2)
        self.calls = calls

    async def start(self) -> None:
        self.calls.append("start pool")
        await super().start()

    async def stop(self) -> None:
        self.calls.append("stop pool")
        await super().stop()


class RecordingOrders(OrderQueueManager[str]):
    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    async def start(self) -> None:
        self.calls.append("start orders")
        await super().start()

    async def stop(self) -> None:
        self.calls.append("stop orders")
        await super().stop()


async def price(payload: str) -> Outcome[str]:
    return Outcome(f"priced {payload}")


async def test_the_facade_delegates_and_combines_the_stats():
    calls: list[str] = []
    pool, orders = RecordingPool(calls), RecordingOrders(calls)
    messages: MessageQueue[str, str] = MessageQueue(price, workers=1)
    manager = QueueManager(pool, orders, messages)
    await manager.start()
    assert calls == ["start orders", "start pool"]

    gate = asyncio.Event()

    async def follow(order: str) -> str:
        await gate.wait()
        return f"followed {order}"

    running = await manager.add_priority_task("ORD1", follow, TaskPriority.HIGH, order="ORD1")
    done = await manager.add_priority_task("ORD2", follow, order="ORD2", deadline=None)
    waiting = await manager.add_priority_task("ORD3", follow, TaskPriority.LOW, order="ORD3")
    assert pool.get_task(waiting).status is TaskStatus.QUEUED
    await manager.add_to_order_queue("ORD1", "P1/New")
    failed = await manager.add_to_order_queue(
        "ORD1",
        "P2/Failed",
        kind=OrderEventKind.PROPOSAL_FAILED,
        proposal_id="P2",
        data="no quote",
        error="declined",
    )
    await manager.add_to_order_queue("ORD2", "P9/New")
    assert (failed.kind, failed.proposal_id, failed.data, failed.error) == (
        OrderEventKind.PROPOSAL_FAILED,
        "P2",
        "no quote",
        "declined",
    )
    submitted = await messages.submit("m1", priority=Priority.NORMAL)
    async for _ in messages.watch(submitted.message.id):
        pass

    stats = manager.get_queue_stats()
    assert stats == {
        "priority_queue_size": 1,
        "active_tasks": 2,
        "completed_tasks": 0,
        "order_queues_count": 2,
        "order_queue_details": {"ORD1": 2, "ORD2": 1},
        "message_queue": dataclasses.asdict(messages.stats()),
    }
    assert stats["message_queue"]["completed"] == 1

    gate.set()
    for task_id in (running, done, waiting):
        async for _ in pool.watch(task_id):
            pass
    assert manager.get_task_result(running)["result"] == "followed ORD1"
    assert manager.get_task_result(waiting)["success"] is True
    assert manager.get_queue_stats()["completed_tasks"] == 3
    assert manager.cleanup_old_results(max_age_seconds=0) == 3
    assert manager.get_task_result(running) is None

    assert await manager.get_from_order_queue("ORD1", timeout=0.01) == "P1/New"
    assert manager.get_order_queue("ORD2") is orders.get_order_queue("ORD2")
    assert manager.has_order_queue("ORD2")
    assert await manager.remove_order_queue("ORD2") is True
    assert not orders.has_order_queue("ORD2")

    await manager.stop()
    assert calls[-2:] == ["stop pool", "stop orders"]
    with pytest.raises(ClosedError):
        await manager.add_priority_task("ORD4", follow, order="ORD4")
    with pytest.raises(ClosedError):
        await messages.submit("m2", priority=Priority.NORMAL)


async def test_each_manager_is_optional():
    manager = QueueManager()
    assert manager.priority_manager is not priority_queue_manager
    assert manager.order_manager is not order_queue_manager
    assert manager.message_queue is None
    await manager.start()
    await manager.add_to_order_queue("ORD", "P1/New")
    assert manager.get_queue_stats() == {
        "priority_queue_size": 0,
        "active_tasks": 0,
        "completed_tasks": 0,
        "order_queues_count": 1,
        "order_queue_details": {"ORD": 1},
    }
    await manager.stop()


def test_the_seed_names_are_kept():
    assert queue_manager.priority_manager is priority_queue_manager
    assert queue_manager.order_manager is order_queue_manager
    assert facade_module.TaskPriority is TaskPriority
    assert facade_module.PriorityTask is PriorityTask
    assert set(facade_module.__all__) >= {"QueueManager", "TaskPriority", "PriorityTask"}
