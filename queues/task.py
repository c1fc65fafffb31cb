"""The priority task pool's types: priorities, statuses, the queued item and the record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

R = TypeVar("R")

#: What the pool runs: awaited as task_func(**kwargs).
TaskFunc = Callable[..., Awaitable[R]]


class TaskPriority(IntEnum):
    """Higher values run first, as with the message queue's Priority; the numbers
    are the requestor proto's. Until task records' version 2 they ran the other
    way (HIGH=1 … LOW=3): task_records.py migrates what was written so."""

    #: Runs after HIGH and MEDIUM.
    LOW = 1
    #: The usual priority.
    MEDIUM = 2
    #: Runs before MEDIUM and LOW.
    HIGH = 3


class TaskStatus(StrEnum):
    #: Waiting for a free slot.
    QUEUED = "queued"
    #: Its task function is running in a slot.
    RUNNING = "running"
    #: The task function returned; result holds what it returned. Final.
    SUCCEEDED = "succeeded"
    #: The task function raised; error holds "ExcType: message". Final.
    FAILED = "failed"
    #: Cancelled through cancel_task. Final.
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
    """The item waiting in the priority queue, ordered by its rank only."""

    #: (-priority, seq): asyncio.PriorityQueue pops the smallest item, so the
    #: highest priority goes first and, within it, the oldest.
    rank: tuple[int, int] = field(init=False, repr=False)
    priority: TaskPriority = field(compare=False)
    #: Submission order: FIFO within a priority. Kept across restarts.
    seq: int = field(compare=False)
    task_id: str = field(compare=False)
    order_req_id: str = field(compare=False)
    task_func: TaskFunc[R] = field(compare=False)
    kwargs: dict[str, Any] = field(compare=False)
    created_at: float = field(compare=False)
    #: Absolute time (the pool's clock, epoch seconds) it must end by; None: no deadline.
    deadline: float | None = field(compare=False, default=None)
    #: The name task_func is registered under ("" if it is not): what a
    #: store keeps, to find the function again after a restart.
    func_name: str = field(compare=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank", (-self.priority, self.seq))


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
    #: What the task function returned, once SUCCEEDED; for a task that ended
    #: otherwise, what the pool's partial_result read from its kwargs (if set).
    result: R | None = None
    #: Why it failed or stopped; "" otherwise.
    error: str = ""
    #: What the task function is called with. The snapshot shares the pool's
    #: objects, so a caller must only read them.
    kwargs: dict[str, Any] = field(default_factory=dict)
