"""Tasks as store records, and back.

A task is one record in the "tasks" collection, keyed by its id. It is written
when the task is queued and again when it ends; RUNNING is never written, so a
record says QUEUED or a final status. The task function is kept by the name
it is registered under, its kwargs and its result through the pool's codecs.

Version 2 numbers priorities as TaskPriority does now, higher first (LOW=1 …
HIGH=3); version 1 numbered them the other way (HIGH=1 … LOW=3), and is
migrated as it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from queues.codec import Codec
from queues.records import VERSION, version_of
from queues.storage import Delete, Put
from queues.task import PriorityTask, R, TaskPriority, TaskRecord, TaskStatus

COLLECTION = "tasks"
#: The version (records.py) of the shape TaskCodec.put writes.
TASK_VERSION = 2


@dataclass(frozen=True, slots=True)
class StoredTask(Generic[R]):
    """A task as read back: its record, and what its queue item needs besides."""

    record: TaskRecord[R]
    seq: int
    func_name: str


@dataclass(frozen=True, slots=True)
class TaskCodec(Generic[R]):
    args: Codec[dict[str, Any]]
    result: Codec[R]

    def put(self, item: PriorityTask[R], record: TaskRecord[R]) -> Put:
        """The record of the task as record has it (QUEUED or final). Raises
        whatever the codecs raise for a value they cannot encode."""
        return Put(
            COLLECTION,
            record.task_id,
            {
                VERSION: TASK_VERSION,
                "order_req_id": record.order_req_id,
                "priority": int(record.priority),
                "seq": item.seq,
                "func": item.func_name,
                "kwargs": self.args.encode(record.kwargs),
                "status": record.status.value,
                "created_at": record.created_at,
                "deadline": record.deadline,
                "queue_position": record.queue_position,
                "started_at": record.started_at,
                "completed_at": record.completed_at,
                "result": None if record.result is None else self.result.encode(record.result),
                "error": record.error,
            },
        )

    def decode(self, task_id: str, value: dict[str, Any]) -> StoredTask[R]:
        """The task a record holds. Raises KeyError, ValueError or whatever the
        codecs raise for a record this program did not write."""
        version = version_of(value, TASK_VERSION)
        status = TaskStatus(value["status"])
        final = status.is_final
        record: TaskRecord[R] = TaskRecord(
            task_id=task_id,
            order_req_id=value["order_req_id"],
            priority=(
                TaskPriority(value["priority"])
                if version >= 2
                else priority_from_version_1(value["priority"])
            ),
            # The pool never writes RUNNING; should a record say so, the run it
            # names died with the process, and the task waits to run again.
            status=status if final else TaskStatus.QUEUED,
            created_at=value["created_at"],
            deadline=value["deadline"],
            queue_position=value["queue_position"],
            started_at=value["started_at"] if final else None,
            completed_at=value["completed_at"],
            result=None if value["result"] is None else self.result.decode(value["result"]),
            error=value["error"],
            kwargs=self.args.decode(value["kwargs"]),
        )
        return StoredTask(record, value["seq"], value["func"])


def priority_from_version_1(number: int) -> TaskPriority:
    """The priority a version-1 record numbered so (HIGH=1, MEDIUM=2, LOW=3).
    Raises ValueError for any other number."""
    if number not in (1, 2, 3):
        raise ValueError(f"{number!r} is not a version-1 task priority (1 to 3)")
    return TaskPriority(4 - number)


def delete(task_id: str) -> Delete:
    return Delete(COLLECTION, task_id)
