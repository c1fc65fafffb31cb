"""How a requestor task is read from its two jobs (task_jobs): plain functions,
tested without a store or asyncio."""

import dataclasses

from support.jobs import a_job

from queues.core.jobs import Job, JobState, QueueCounts
from queues.task import TaskPriority, TaskStatus
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import Placement
from requestor_svc.task_jobs import (
    READY,
    TIMED_OUT_QUEUED,
    TIMED_OUT_RUNNING,
    WAITING,
    Outcome,
    ReadyPayload,
    TaskPayload,
    pool_stats,
    queue_position,
    task_view,
)

HIGH, MEDIUM, LOW = (int(p) for p in (TaskPriority.HIGH, TaskPriority.MEDIUM, TaskPriority.LOW))


def counts(**by: int) -> QueueCounts:
    """QueueCounts from keywords such as available_3=2 (state_priority=count)."""
    parsed = {}
    for key, n in by.items():
        state, priority = key.rsplit("_", 1)
        parsed[(JobState(state), int(priority))] = n
    return QueueCounts(parsed, None, None)


def job(queue: str, payload: object, state: JobState, **fields: object) -> Job:
    return a_job(
        id="t1" if queue == WAITING else "r1",
        queue=queue,
        payload=payload,
        priority=MEDIUM,
        state=state,
        max_attempts=1000,
        attempt=1,
        created_at=100.0,
        **fields,
    )


TASK = TaskPayload(
    Placement("ORD", TaskPriority.MEDIUM, None, None), "", 200.0, 3, OrderProgress("ORD")
)


def test_the_queue_position_counts_tasks_of_its_priority_or_higher_that_do_not_run() -> None:
    waiting = counts(available_3=1, running_2=2, held_3=2, held_1=4, available_1=9)
    ready = counts(running_3=1)
    # Watching: 1 HIGH + 2 MEDIUM; moved on at MEDIUM or above: 2, of which 1 runs.
    assert queue_position(waiting, ready, MEDIUM) == 3 + 1
    assert queue_position(waiting, ready, HIGH) == 1 + 1
    assert queue_position(waiting, ready, LOW) == 3 + 9 + (6 - 1)


def test_pool_stats_count_each_task_once_by_its_waiting_job() -> None:
    waiting = counts(available_2=2, running_2=1, held_2=3, completed_2=4, cancelled_1=1)
    # A ready job still running after it settled its task is not counted twice.
    ready = counts(running_2=5, completed_2=4)
    stats = pool_stats(waiting, ready, 10)
    assert (stats.active_tasks, stats.priority_queue_size, stats.waiting_tasks) == (3, 3, 3)
    assert (stats.completed_tasks, stats.max_concurrent_tasks) == (5, 10)


def test_an_unsettled_task_reads_as_where_its_jobs_are() -> None:
    waiting = job(WAITING, TASK.encode(), JobState.RUNNING)
    assert task_view(waiting, None, now=150.0).record.status is TaskStatus.QUEUED
    assert task_view(waiting, None, now=250.0).record.status is TaskStatus.TIMED_OUT

    held = dataclasses.replace(waiting, state=JobState.HELD, result={"ready": "r1"})
    progress = OrderProgress("ORD", last_sequence=4, reconnects=1)
    payload = ReadyPayload("t1", 200.0, progress).encode()
    live = job(READY, payload, JobState.RUNNING, lease_until=180.0, started_at=120.0)
    running = task_view(held, live, now=150.0)
    assert (running.record.status, running.record.started_at) == (TaskStatus.RUNNING, 120.0)
    assert (running.progress.last_sequence, running.progress.reconnects) == (4, 1)
    # Its lease ran out: the replica running it is presumed dead, and it waits again.
    assert task_view(held, live, now=190.0).record.status is TaskStatus.QUEUED
    late = task_view(held, live, now=201.0)
    assert (late.record.status, late.record.error) == (TaskStatus.TIMED_OUT, TIMED_OUT_QUEUED)
    lapsed = dataclasses.replace(live, lease_until=300.0)
    assert task_view(held, lapsed, now=201.0).record.error == TIMED_OUT_RUNNING


def test_a_settled_task_reads_as_its_recorded_outcome() -> None:
    outcome = Outcome(TaskStatus.SUCCEEDED, "", OrderProgress("ORD", last_sequence=2), 120.0, 160.0)
    settled = job(
        WAITING,
        TASK.encode(),
        JobState.COMPLETED,
        result={"ready": "r1"},
        review=outcome.encode(),
        finished_at=160.0,
    )
    view = task_view(settled, None, now=500.0)
    assert (view.record.status, view.record.completed_at, view.progress.last_sequence) == (
        TaskStatus.SUCCEEDED,
        160.0,
        2,
    )
    # A task that ended while waiting records its outcome as the result.
    timed_out = Outcome(TaskStatus.TIMED_OUT, "late", OrderProgress("ORD"), None, 200.0)
    ended = job(WAITING, TASK.encode(), JobState.COMPLETED, result=timed_out.encode())
    assert task_view(ended, None, now=500.0).record.error == "late"


def test_a_task_payload_reads_back_with_its_checkpointed_progress() -> None:
    checkpointed = dataclasses.replace(TASK, progress=OrderProgress("ORD", reconnects=7))
    assert TaskPayload.decode(checkpointed.encode()) == checkpointed
