"""What an order task runs on, and how it and its result are written.

An order task's job is how the order was placed, the request id it was placed
under, and the progress its follow collects. Its waiting job's payload holds
it (task_jobs.py), as an earlier release's pool held it in the task's kwargs,
{"job": the job}, and its result (the progress) in the task's record.

The job's record has a version of its own (queues/records.py): version 2
numbers its priority as TaskPriority does now, version 1 the other way round,
as the task record around it did (queues/task_records.py).
"""

from dataclasses import dataclass
from typing import Any

from queues.records import VERSION, version_of
from queues.task import TaskPriority
from queues.task_records import priority_from_version_1
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from requestor_svc.order_follower import OrderProgress
from service_runtime.codecs import ProtoCodec

_SUBMISSIONS = ProtoCodec(quote_pb.Submission)
_EVENTS = ProtoCodec(processor_pb.OrderEvent)
#: The version of the shape JobArgsCodec.encode writes.
JOB_VERSION = 2


@dataclass(frozen=True, slots=True)
class Placement:
    """An order request as placed; two equal placements are the same request."""

    order_req_id: str
    priority: TaskPriority
    #: Seconds after placing it that the task times out; None: the service's default.
    timeout: float | None
    #: Kept with the result and never looked into.
    submission: quote_pb.Submission | None
    #: Whose work it is: slots go to the keys in turn.
    fairness_key: str = ""


@dataclass(frozen=True, slots=True)
class OrderJob:
    """The argument of an order task."""

    placement: Placement
    #: "" when placed without one.
    request_id: str
    #: Updated by the follow as events arrive; read while the task runs.
    progress: OrderProgress


class JobArgsCodec:
    """An order task's kwargs, {"job": OrderJob}, without the job's progress:
    a task queued again after a restart follows its order from the start, and
    what a finished task collected is its result, written when it ends."""

    def encode(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        job: OrderJob = kwargs["job"]
        placement = job.placement
        return {
            VERSION: JOB_VERSION,
            "order_req_id": placement.order_req_id,
            "priority": int(placement.priority),
            "timeout": placement.timeout,
            "submission": (
                None if placement.submission is None else _SUBMISSIONS.encode(placement.submission)
            ),
            "request_id": job.request_id,
            # Only when given, so a placement's fingerprint is what it was
            # before there were keys.
            **({"fairness_key": placement.fairness_key} if placement.fairness_key else {}),
        }

    def decode(self, data: dict[str, Any]) -> dict[str, Any]:
        version = version_of(data, JOB_VERSION)
        priority = data["priority"]
        placement = Placement(
            data["order_req_id"],
            TaskPriority(priority) if version >= 2 else priority_from_version_1(priority),
            data["timeout"],
            None if data["submission"] is None else _SUBMISSIONS.decode(data["submission"]),
            data.get("fairness_key", ""),
        )
        progress = OrderProgress(placement.order_req_id)
        return {"job": OrderJob(placement, data["request_id"], progress)}


class ProgressCodec:
    """An order task's result: the progress its follow collected."""

    def encode(self, progress: OrderProgress) -> dict[str, Any]:
        return {
            "order_req_id": progress.order_req_id,
            "proposals": [_EVENTS.encode(event) for event in progress.proposals],
            "last_sequence": progress.last_sequence,
            "reconnects": progress.reconnects,
            "completed": progress.completed,
        }

    def decode(self, data: dict[str, Any]) -> OrderProgress:
        proposals = [_EVENTS.decode(event) for event in data["proposals"]]
        return OrderProgress(
            data["order_req_id"],
            proposals,
            data["last_sequence"],
            data["reconnects"],
            data["completed"],
            sum(event.ByteSize() for event in proposals),
        )
