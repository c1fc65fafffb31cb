"""An order task's job as the store keeps it: today's shape round-trips, and
one written before jobs had versions numbers its priority the old way."""

import pytest

from queues.records import UnknownVersionError
from queues.task import TaskPriority
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JOB_VERSION, JobArgsCodec, OrderJob, Placement


def job(priority: TaskPriority) -> OrderJob:
    return OrderJob(Placement("ORD", priority, 30.0, None), "req-1", OrderProgress("ORD"))


@pytest.mark.parametrize("priority", list(TaskPriority))
def test_a_job_round_trips_in_todays_numbers(priority: TaskPriority) -> None:
    written = JobArgsCodec().encode({"job": job(priority)})
    assert (written["version"], written["priority"]) == (JOB_VERSION, int(priority))
    assert JobArgsCodec().decode(written)["job"].placement == job(priority).placement


@pytest.mark.parametrize(
    ("number", "priority"),
    [(1, TaskPriority.HIGH), (2, TaskPriority.MEDIUM), (3, TaskPriority.LOW)],
)
def test_a_version_1_job_reads_its_priority_in_the_old_numbers(
    number: int, priority: TaskPriority
) -> None:
    written = {
        "order_req_id": "ORD",
        "priority": number,
        "timeout": 30.0,
        "submission": None,
        "request_id": "req-1",
    }
    decoded = JobArgsCodec().decode(written)["job"]
    assert (decoded.placement.priority, decoded.request_id) == (priority, "req-1")


def test_a_job_of_a_newer_version_is_refused() -> None:
    written = JobArgsCodec().encode({"job": job(TaskPriority.HIGH)})
    with pytest.raises(UnknownVersionError):
        JobArgsCodec().decode({**written, "version": JOB_VERSION + 1})
