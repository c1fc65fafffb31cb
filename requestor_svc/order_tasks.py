"""Order requests as tasks, as the servicer answers them: a placed task, a task
as it is now, and the pool's counts (core_tasks.py keeps them)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from queues.task import TaskRecord
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import Placement

#: What a task waits for before it takes a slot: returns once the order has
#: had an event (taken into the progress it is given).
AwaitStart = Callable[[OrderProgress], Awaitable[None]]

#: Why a task that timed out waiting for its first event did: the end of
#: "deadline passed while …".
WAITING_FOR_START = "waiting for its order's first event"


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
