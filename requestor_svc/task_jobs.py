"""How a requestor task lives in the durable core: two jobs, what each holds, and
how a task's answer is read from them. Plain functions and data, no store.

A task is first a job of WAITING, whose id is the task's id: it is claimed
(with no slot of max_concurrent_tasks) while its order has had no event. At
the first event it submits a job of READY carrying the progress so far, with
the waiting job's id as its request id (so doing so twice, after a crash,
makes one), and is held (HELD) with {"ready": <that job's id>} as its result.
The ready job is claimed in priority order, max_concurrent_tasks per replica,
and checkpoints its progress into its payload as events arrive, so a new
attempt resumes from the cursor.

The waiting job is the task's record throughout: it is final exactly when the
task is, so it counts finished tasks and carries the request id and the
retention. A task that ends while waiting completes it with its Outcome as the
result; one that moved on is settled by decide(approve) with its Outcome as
the review, by the ready job's handler or by CancelTask, whichever is first.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from queues.core.jobs import FINAL_STATES, Job, JobState, QueueCounts
from queues.task import TaskPriority, TaskRecord, TaskStatus
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JobArgsCodec, OrderJob, Placement, ProgressCodec
from requestor_svc.order_tasks import WAITING_FOR_START, OrderTask, PoolStats

WAITING = "tasks.waiting"
READY = "tasks.ready"

#: A failed attempt is the store's failure or a bug, never the task's (the
#: task's own failures are Outcomes): it is retried after the worker's backoff,
#: resuming from the checkpoint, until the deadline settles the task.
MAX_ATTEMPTS = 1000

TIMED_OUT_QUEUED = "deadline passed while queued"
TIMED_OUT_RUNNING = "deadline passed while running"

_JOBS = JobArgsCodec()
_PROGRESS = ProgressCodec()


@dataclass(frozen=True, slots=True)
class TaskPayload:
    """The waiting job's payload: the task as placed, and what its attempts
    have seen while waiting for the first event (reconnects), checkpointed."""

    placement: Placement
    request_id: str
    #: Epoch seconds by which the task ends.
    deadline: float
    #: Tasks waiting ahead of it when it was placed, answered again to a repeat.
    queue_position: int
    progress: OrderProgress

    def encode(self) -> dict[str, Any]:
        job = OrderJob(self.placement, self.request_id, self.progress)
        return {
            "task": _JOBS.encode({"job": job}),
            "deadline": self.deadline,
            "position": self.queue_position,
            "progress": _PROGRESS.encode(self.progress),
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> "TaskPayload":
        job: OrderJob = _JOBS.decode(data["task"])["job"]
        progress = _PROGRESS.decode(data["progress"])
        return cls(job.placement, job.request_id, data["deadline"], data["position"], progress)


def fingerprint(placement: Placement) -> str:
    """Equal for equal placements, in every process: what tells a repeated
    request id from one reused for another placement."""
    encoded = _JOBS.encode({"job": OrderJob(placement, "", OrderProgress(""))})
    canonical = json.dumps(encoded, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ReadyPayload:
    """The ready job's payload, rewritten at each checkpoint."""

    #: The waiting job's id: the task's.
    task_id: str
    deadline: float
    progress: OrderProgress

    def encode(self) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "deadline": self.deadline,
            "progress": _PROGRESS.encode(self.progress),
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> "ReadyPayload":
        return cls(data["task"], data["deadline"], _PROGRESS.decode(data["progress"]))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a task ended, as its waiting job records it; or, read from its jobs,
    where an unfinished task is."""

    status: TaskStatus
    error: str
    progress: OrderProgress
    #: When its last attempt took its slot; None if it never had one.
    started_at: float | None
    #: None while it is unfinished.
    finished_at: float | None

    def encode(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "error": self.error,
            "progress": _PROGRESS.encode(self.progress),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> "Outcome":
        return cls(
            TaskStatus(data["status"]),
            data["error"],
            _PROGRESS.decode(data["progress"]),
            data["started_at"],
            data["finished_at"],
        )


def ready_id(waiting: Job) -> str | None:
    """The id of the ready job the task moved on to, if it did."""
    result = waiting.result
    return result.get("ready") if isinstance(result, dict) else None


def recorded_outcome(waiting: Job) -> Outcome | None:
    """The Outcome a completed waiting job records, if it is completed."""
    if waiting.state is not JobState.COMPLETED:
        return None
    return Outcome.decode(waiting.review if ready_id(waiting) else waiting.result)


def is_live(job: Job, now: float) -> bool:
    """A claim holds job under a lease that has not run out: its attempt runs.
    (A lease that ran out belongs to a replica presumed dead: the job waits to
    be claimed again.)"""
    return job.state is JobState.RUNNING and job.lease_until is not None and job.lease_until > now


def task_view(waiting: Job, ready: Job | None, now: float) -> OrderTask:
    """The task as its jobs hold it at now: waiting, and the ready job it moved
    on to (None if it has not, or if waiting records the outcome). A task past
    its deadline that no attempt has settled yet is answered TIMED_OUT, as it
    will be settled once claimed."""
    task = TaskPayload.decode(waiting.payload)
    progress = task.progress if ready is None else ReadyPayload.decode(ready.payload).progress
    outcome = recorded_outcome(waiting) or _unsettled(waiting, ready, task.deadline, progress, now)
    record: TaskRecord[OrderProgress] = TaskRecord(
        task_id=waiting.id,
        order_req_id=task.placement.order_req_id,
        priority=TaskPriority(waiting.priority),
        status=outcome.status,
        created_at=waiting.created_at,
        deadline=task.deadline,
        queue_position=task.queue_position,
        started_at=outcome.started_at,
        completed_at=outcome.finished_at,
        result=outcome.progress,
        error=outcome.error,
    )
    return OrderTask(record, task.placement, outcome.progress)


def _unsettled(
    waiting: Job, ready: Job | None, deadline: float, progress: OrderProgress, now: float
) -> Outcome:
    if waiting.state is JobState.CANCELLED:
        return Outcome(
            TaskStatus.CANCELLED, "cancelled while queued", progress, None, waiting.finished_at
        )
    # Every attempt failed: not the task's doing (that is an Outcome) but the
    # store's, or a bug's.
    for job in (waiting, ready):
        if job is not None and job.state.is_final:
            return Outcome(TaskStatus.FAILED, job.error, progress, job.started_at, job.finished_at)
    if ready is None:
        if now >= deadline:
            return Outcome(
                TaskStatus.TIMED_OUT,
                f"deadline passed while {WAITING_FOR_START}",
                progress,
                None,
                deadline,
            )
        return Outcome(TaskStatus.QUEUED, "", progress, None, None)
    if is_live(ready, now):
        if now >= deadline:
            return Outcome(
                TaskStatus.TIMED_OUT, TIMED_OUT_RUNNING, progress, ready.started_at, deadline
            )
        return Outcome(TaskStatus.RUNNING, "", progress, ready.started_at, None)
    if now >= deadline:
        return Outcome(TaskStatus.TIMED_OUT, TIMED_OUT_QUEUED, progress, None, deadline)
    return Outcome(TaskStatus.QUEUED, "", progress, None, None)


def _at_or_above(counts: QueueCounts, state: JobState, priority: int) -> int:
    return sum(n for (s, p), n in counts.by_state_priority.items() if s is state and p >= priority)


def queue_position(waiting: QueueCounts, ready: QueueCounts, priority: int) -> int:
    """Unfinished tasks of priority or higher that do not run: those waiting for
    their first event, and those moved on (HELD) less those that run."""
    watching = _at_or_above(waiting, JobState.AVAILABLE, priority) + _at_or_above(
        waiting, JobState.RUNNING, priority
    )
    moved_on = _at_or_above(waiting, JobState.HELD, priority)
    return watching + max(0, moved_on - _at_or_above(ready, JobState.RUNNING, priority))


def pool_stats(waiting: QueueCounts, ready: QueueCounts, max_concurrent_tasks: int) -> PoolStats:
    """The tasks counted from both queues, exactly across replicas.

    Each task is counted by its waiting job, which is final once the task is.
    Running is a ready job running whose task is not final: a ready job runs on
    for one write after it settled its task, and is not counted then.
    """
    watching = waiting.count(JobState.AVAILABLE) + waiting.count(JobState.RUNNING)
    moved_on = waiting.count(JobState.HELD)
    running = min(ready.count(JobState.RUNNING), moved_on)
    return PoolStats(
        priority_queue_size=watching + moved_on - running,
        active_tasks=running,
        completed_tasks=sum(waiting.count(state) for state in FINAL_STATES),
        max_concurrent_tasks=max_concurrent_tasks,
        waiting_tasks=watching,
    )
