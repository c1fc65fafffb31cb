"""Translation between quoteflow.requestor.v1 messages and the task pool's types.

PlaceOrder requests are checked here, field by field, before anything is
queued: every bad field becomes one FieldViolation, and all of them are raised
together as an InvalidArgumentError (INVALID_ARGUMENT with a BadRequest).
"""

from dataclasses import dataclass
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from queues.task import TaskPriority, TaskStatus
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from requestor_svc.order_job import Placement
from requestor_svc.order_tasks import OrderTask, PoolStats
from service_runtime.submission_limits import check_submission
from service_runtime.validation import Violations

#: Longest task timeout a PlaceOrder may ask for, in seconds.
MAX_TIMEOUT_SECONDS = 24 * 3600.0

# Matched by name, so the pool's numbers need not be the proto's (they are, now
# that both run higher first). (Value() is typed as answering a plain int; the
# number it answers is one of the named enum's.)
_PRIORITY_TO_PB = {
    p: cast(pb.TaskPriority, pb.TaskPriority.Value(f"TASK_PRIORITY_{p.name}")) for p in TaskPriority
}
_PRIORITIES = {value: key for key, value in _PRIORITY_TO_PB.items()}
_STATUS_TO_PB = {
    s: cast(pb.TaskStatus, pb.TaskStatus.Value(f"TASK_STATUS_{s.name}")) for s in TaskStatus
}


@dataclass(frozen=True, slots=True)
class PlaceArgs:
    """A checked PlaceOrder request."""

    placement: Placement
    request_id: str


def place_args(request: pb.PlaceOrderRequest) -> PlaceArgs:
    problems = Violations()
    problems.check_id("order_req_id", request.order_req_id)
    priority = TaskPriority.MEDIUM
    if request.priority != pb.TASK_PRIORITY_UNSPECIFIED:
        known = _PRIORITIES.get(request.priority)
        if known is None:
            problems.add("priority", f"unknown TaskPriority {request.priority}")
        else:
            priority = known
    timeout = None
    if request.HasField("timeout"):
        timeout = problems.check_duration("timeout", request.timeout)
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            problems.add(
                "timeout",
                f"must be more than 0 s and at most {MAX_TIMEOUT_SECONDS:g} s; got {timeout:g} s",
            )
    problems.check_id("request_id", request.request_id, required=False)
    problems.check_id("fairness_key", request.fairness_key, required=False)
    submission = None
    # Optional, since the task only keeps it; when given, held to SubmitQuote's limits.
    if request.HasField("submission"):
        submission = request.submission
        check_submission(problems, "submission", submission)
    problems.raise_if_any()
    return PlaceArgs(
        Placement(request.order_req_id, priority, timeout, submission, request.fairness_key),
        request.request_id,
    )


def task_result_to_pb(task: OrderTask) -> pb.TaskResult:
    record, progress = task.record, task.progress
    result = pb.TaskResult(
        task_id=record.task_id,
        order_req_id=record.order_req_id,
        priority=_PRIORITY_TO_PB[record.priority],
        status=_STATUS_TO_PB[record.status],
        proposals=progress.proposals,
        created_at=timestamp(record.created_at),
        error_message=record.error,
        last_sequence=progress.last_sequence,
        reconnects=progress.reconnects,
        fairness_key=task.placement.fairness_key,
    )
    for name, when in (
        ("started_at", record.started_at),
        ("completed_at", record.completed_at),
        ("deadline", record.deadline),
    ):
        if when is not None:
            getattr(result, name).CopyFrom(timestamp(when))
    if task.placement.submission is not None:
        result.submission.CopyFrom(task.placement.submission)
    return result


def stats_to_pb(stats: PoolStats) -> pb.GetStatsResponse:
    return pb.GetStatsResponse(
        priority_queue_size=stats.priority_queue_size,
        active_tasks=stats.active_tasks,
        completed_tasks=stats.completed_tasks,
        max_concurrent_tasks=stats.max_concurrent_tasks,
        waiting_tasks=stats.waiting_tasks,
    )


def timestamp(epoch_seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(epoch_seconds * 1e9))
    return stamp
