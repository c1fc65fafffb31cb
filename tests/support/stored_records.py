"""What tests of stored records share: each manager's start over a given
store, to see a record read or refused, and sample records to store."""

from collections.abc import Awaitable
from typing import Any

from processor_svc.journal_import import read_journal
from queues.message import Outcome
from queues.message_queue import MessageQueue
from queues.order_events import OrderEvent, OrderEventKind
from queues.order_queues import OrderQueueManager
from queues.priority_task_pool import PriorityQueueManager
from queues.storage import Store
from queues.task import PriorityTask, TaskPriority, TaskRecord, TaskStatus


async def price(payload: str) -> Outcome[str]:
    return Outcome(payload)


async def step(**kwargs: Any) -> str:
    return "done"


def start_messages(store: Store) -> Awaitable[None]:
    return MessageQueue(price, store=store).start()


def start_tasks(store: Store) -> Awaitable[None]:
    return PriorityQueueManager(1, store=store, task_funcs={"step": step}).start()


def start_orders(store: Store) -> Awaitable[None]:
    return OrderQueueManager(store=store).start()


async def start_desk(store: Store) -> None:
    """Read the processor's journal, as its import does."""
    await read_journal(store)


def an_event() -> OrderEvent[Any]:
    return OrderEvent("o1", 1, OrderEventKind.PROPOSAL_NEW, "p1", "p1/New", 5.0, {"q": 1})


def a_task() -> tuple[PriorityTask, TaskRecord[Any]]:
    """A queued task t1 of order o1, as the pool holds it and as it records it."""
    record: TaskRecord[Any] = TaskRecord(
        task_id="t1",
        order_req_id="o1",
        priority=TaskPriority.MEDIUM,
        status=TaskStatus.QUEUED,
        created_at=1.0,
        kwargs={"a": 1},
    )
    item = PriorityTask(TaskPriority.MEDIUM, 3, "t1", "o1", step, {"a": 1}, 1.0, func_name="step")
    return item, record
