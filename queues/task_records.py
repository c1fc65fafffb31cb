"""Tasks as records of an earlier release's journal (the requestor's
priority task pool), and back: what requestor_svc/journal_import.py reads.

A task is one record in the "tasks" collection, keyed by its id. The pool
wrote it when the task was queued and again when it ended; RUNNING was never
written, so a record says QUEUED or a final status. The task function is kept
by the name it was registered under, its kwargs and its result through codecs.

Version 2 numbers priorities as TaskPriority does now, higher first (LOW=1 …
HIGH=3); version 1 numbered them the other way (HIGH=1 … LOW=3), and is
migrated as it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic

from queues.codec import Codec
from queues.records import VERSION, check, field, version_of
from queues.storage import Put
from queues.task import R, TaskPriority, TaskRecord, TaskStatus

COLLECTION = "tasks"
#: The version (records.py) of the shape TaskCodec.put writes.
TASK_VERSION = 2


@dataclass(frozen=True, slots=True)
class StoredTask(Generic[R]):
    """A task as read back: its record, its place in submission order and the
    name of its task function."""

    record: TaskRecord[R]
    seq: int
    func_name: str


@dataclass(frozen=True, slots=True)
class TaskCodec(Generic[R]):
    args: Codec[dict[str, Any]]
    result: Codec[R]

    def put(self, record: TaskRecord[R], seq: int, func_name: str) -> Put:
        """The record the pool wrote of the task as record has it (QUEUED or
        final), seq its place in submission order and func_name its task
        function's. Raises whatever the codecs raise for a value they cannot
        encode."""
        return Put(
            COLLECTION,
            record.task_id,
            {
                VERSION: TASK_VERSION,
                "order_req_id": record.order_req_id,
                "priority": int(record.priority),
                "seq": seq,
                "func": func_name,
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
        """The task a record holds. Raises FieldError, ValueError or whatever the
        codecs raise for a record this program did not write."""
        version = version_of(value, TASK_VERSION)
        status = field(value, "status", TaskStatus)
        final = status.is_final
        priority = field(value, "priority", int)
        started_at = field(value, "started_at", float, nullable=True)
        result = field(value, "result", object, nullable=True)
        record: TaskRecord[R] = TaskRecord(
            task_id=task_id,
            order_req_id=field(value, "order_req_id", str),
            priority=(
                check(priority, TaskPriority, "priority")
                if version >= 2
                else priority_from_version_1(priority)
            ),
            # The pool never wrote RUNNING; should a record say so, the run it
            # names died with the process, and the task waits to run again.
            status=status if final else TaskStatus.QUEUED,
            created_at=field(value, "created_at", float),
            deadline=field(value, "deadline", float, nullable=True),
            queue_position=field(value, "queue_position", int, minimum=0),
            started_at=started_at if final else None,
            # A final task always ended at some time: its outcome's finished_at.
            completed_at=field(value, "completed_at", float, nullable=not final),
            result=None if result is None else self.result.decode(result),
            error=field(value, "error", str),
            kwargs=self.args.decode(field(value, "kwargs", dict)),
        )
        return StoredTask(record, field(value, "seq", int, minimum=1), field(value, "func", str))


def priority_from_version_1(number: int) -> TaskPriority:
    """The priority a version-1 record numbered so (HIGH=1, MEDIUM=2, LOW=3).
    Raises ValueError for any other number."""
    if number not in (1, 2, 3):
        raise ValueError(f"{number!r} is not a version-1 task priority (1 to 3)")
    return TaskPriority(4 - number)
