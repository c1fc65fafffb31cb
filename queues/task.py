"""The requestor's task types: priorities, statuses and the record of a task
(as the requestor answers it, and as earlier releases' journals hold it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Generic, TypeVar

R = TypeVar("R")


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


@dataclass(slots=True)
class TaskRecord(Generic[R]):
    """One task and everything that has happened to it. Times are epoch seconds."""

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
    #: What the task had collected when it ended (its order's progress).
    result: R | None = None
    #: Why it failed or stopped; "" otherwise.
    error: str = ""
    #: What an earlier release's pool called the task function with: how its
    #: journal holds the task's job (requestor_svc/order_job.py's JobArgsCodec).
    kwargs: dict[str, Any] = field(default_factory=dict)
