"""The priority task pool: slot order, the concurrency limit, outcomes,
deadlines, cancellation, exact stats, retention, stop/start and the seed's API."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from support.polling import final_state
from support.scripted import Scripted

from queues.errors import ClosedError, InvalidStateError, NotFoundError, TaskFailedError
from queues.priority_task_pool import (
    PriorityQueueManager,
    PriorityTask,
    TaskPriority,
    TaskStatus,
    priority_queue_manager,
)


class Jobs(Scripted):
    """Task functions whose behaviour the test controls, and what they did."""

    async def run(self, name: str, fail: str = "") -> str:
        await self.play(name, fail)
        return f"done {name}"


def counts(pool: PriorityQueueManager[str]) -> tuple[int, int, int]:
    stats = pool.get_queue_stats()
    return stats["priority_queue_size"], stats["active_tasks"], stats["completed_tasks"]


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture
async def pool() -> AsyncIterator[PriorityQueueManager[str]]:
    one_slot: PriorityQueueManager[str] = PriorityQueueManager(1)
    await one_slot.start()
    yield one_slot
    await one_slot.stop()


def test_items_order_by_priority_then_submission_only():
    def item(priority: TaskPriority, seq: int, task_id: str) -> PriorityTask[str]:
        return PriorityTask(priority, seq, task_id, "ORD", print, {"x": task_id}, 9.0 - seq)

    items = [
        item(TaskPriority.LOW, 1, "l"),
        item(TaskPriority.HIGH, 4, "h2"),
        item(TaskPriority.MEDIUM, 2, "m"),
        item(TaskPriority.HIGH, 3, "h1"),
    ]
    assert [i.task_id for i in sorted(items)] == ["h1", "h2", "m", "l"]
    assert [s for s in TaskStatus if s.is_final] == [
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.CANCELLED,
        TaskStatus.TIMED_OUT,
    ]


async def test_a_freed_slot_goes_to_the_best_waiting_task(jobs, pool):
    jobs.gate("blocker")
    blocker = await pool.add_priority_task("ORD", jobs.run, TaskPriority.LOW, name="blocker")
    await jobs.wait_for("start blocker")
    queued = [
        await pool.add_priority_task("ORD", jobs.run, priority, name=name)
        for name, priority in [
            ("low", TaskPriority.LOW),
            ("medium", TaskPriority.MEDIUM),
            ("high1", TaskPriority.HIGH),
            ("high2", TaskPriority.HIGH),
        ]
    ]
    assert [pool.get_task(t).queue_position for t in queued] == [0, 0, 0, 1]
    assert counts(pool) == (4, 1, 0)

    jobs.gates["blocker"].set()
    for task_id in [blocker, *queued]:
        assert (await final_state(pool, task_id)).status is TaskStatus.SUCCEEDED
    assert jobs.started == ["blocker", "high1", "high2", "medium", "low"]
    assert counts(pool) == (0, 0, 5)


async def test_no_more_than_max_concurrent_tasks_run_at_once(jobs):
    pool: PriorityQueueManager[str] = PriorityQueueManager(3)
    await pool.start()
    await pool.start()  # a second start adds no workers
    names = [f"t{i}" for i in range(10)]
    for name in names:
        jobs.gate(name)
    ids = [await pool.add_priority_task("ORD", jobs.run, name=name) for name in names]
    await jobs.wait_started_count(3)
    assert jobs.running == 3
    assert counts(pool) == (7, 3, 0)
    for k, name in enumerate(names):
        jobs.gates[name].set()
        if k + 3 < len(names):
            await jobs.wait_for(f"start {names[k + 3]}")
            assert jobs.running == 3
            assert counts(pool) == (len(names) - k - 4, 3, k + 1)
    for task_id in ids:
        await final_state(pool, task_id)
    assert jobs.started == names
    assert jobs.max_running == 3
    assert pool.get_queue_stats() == {
        "priority_queue_size": 0,
        "active_tasks": 0,
        "completed_tasks": 10,
        "max_concurrent_tasks": 3,
    }
    await pool.stop()


async def test_outcomes_record_the_result_or_the_error(jobs, pool):
    async def cancels_itself() -> str:
        raise asyncio.CancelledError

    ok = await pool.add_priority_task("ORD1", jobs.run, name="ok")
    bad = await pool.add_priority_task("ORD1", jobs.run, name="bad", fail="no quote")
    # A wrong keyword fails the call itself, before there is anything to await.
    typo = await pool.add_priority_task("ORD1", jobs.run, nme="typo")
    odd = await pool.add_priority_task("ORD1", cancels_itself)

    done = await final_state(pool, ok)
    assert (done.status, done.result, done.error) == (TaskStatus.SUCCEEDED, "done ok", "")
    assert done.started_at is not None
    assert done.completed_at is not None
    failed = await final_state(pool, bad)
    assert (failed.status, failed.error, failed.result) == (
        TaskStatus.FAILED,
        "RuntimeError: no quote",
        None,
    )
    mistyped = await final_state(pool, typo)
    assert mistyped.status is TaskStatus.FAILED
    assert mistyped.error.startswith("TypeError: ")
    assert "nme" in mistyped.error
    cancelled = await final_state(pool, odd)
    assert (cancelled.status, cancelled.error) == (
        TaskStatus.FAILED,
        "the task function was cancelled",
    )

    result = pool.get_task_result(bad)
    assert result is not None
    assert (result["status"], result["success"], result["error"]) == (
        "failed",
        False,
        "RuntimeError: no quote",
    )
    assert pool.get_task_result(ok)["success"] is True
    assert counts(pool) == (0, 0, 4)


async def test_a_foreseen_failure_is_logged_in_one_line_and_any_other_with_its_traceback(
    pool, caplog
):
    async def foreseen() -> str:
        raise TaskFailedError("the order expired")

    async def unforeseen() -> str:
        raise RuntimeError("a bug")

    caplog.set_level(logging.WARNING, logger="queues.priority_task_pool")
    first = await pool.add_priority_task("ORD1", foreseen)
    second = await pool.add_priority_task("ORD2", unforeseen)
    assert (await final_state(pool, first)).error == "TaskFailedError: the order expired"
    assert (await final_state(pool, second)).status is TaskStatus.FAILED
    failures = {r.getMessage(): r.exc_info for r in caplog.records}
    assert failures[f"task {first} of order ORD1 failed: the order expired"] is None
    assert failures[f"task {second} of order ORD2 failed: a bug"] is not None


async def test_a_deadline_passing_while_queued_times_the_task_out_unrun(jobs):
    now = [1000.0]
    pool: PriorityQueueManager[str] = PriorityQueueManager(1, clock=lambda: now[0])
    await pool.start()
    jobs.gate("blocker")
    blocker = await pool.add_priority_task("ORD", jobs.run, name="blocker")
    await jobs.wait_for("start blocker")

    # Its timer fires while the only slot is busy.
    due = await pool.add_priority_task("ORD", jobs.run, deadline=now[0], name="due")
    timed_out = await final_state(pool, due)
    assert (timed_out.status, timed_out.error) == (
        TaskStatus.TIMED_OUT,
        "deadline passed while queued",
    )
    assert timed_out.started_at is None
    assert counts(pool) == (0, 1, 1)

    # Its timer is an hour away, but by the pool's clock the deadline has
    # passed when a worker reaches it.
    late = await pool.add_priority_task("ORD", jobs.run, deadline=now[0] + 3600, name="late")
    now[0] += 7200
    jobs.gates["blocker"].set()
    await final_state(pool, blocker)
    lapsed = await final_state(pool, late)
    assert (lapsed.status, lapsed.error) == (TaskStatus.TIMED_OUT, "deadline passed while queued")
    assert jobs.started == ["blocker"]
    assert counts(pool) == (0, 0, 3)
    await pool.stop()


async def test_a_deadline_passing_while_running_cuts_the_task(jobs, pool):
    jobs.hang.add("slow")
    slow = await pool.add_priority_task("ORD", jobs.run, deadline=time.time() + 0.05, name="slow")
    cut = await final_state(pool, slow)
    assert (cut.status, cut.error) == (TaskStatus.TIMED_OUT, "deadline passed while running")
    assert cut.started_at is not None
    await jobs.wait_for("cancelled slow")
    # The slot is free again.
    after = await pool.add_priority_task("ORD", jobs.run, name="after")
    assert (await final_state(pool, after)).status is TaskStatus.SUCCEEDED


async def test_cancel_queued_running_final_and_unknown(jobs, pool):
    jobs.hang.add("running")
    running = await pool.add_priority_task("ORD", jobs.run, name="running")
    await jobs.wait_for("start running")
    waiting = await pool.add_priority_task("ORD", jobs.run, name="waiting")
    assert counts(pool) == (1, 1, 0)

    queued_cancel = await pool.cancel_task(waiting)
    assert (queued_cancel.status, queued_cancel.error) == (
        TaskStatus.CANCELLED,
        "cancelled while queued",
    )
    assert counts(pool) == (0, 1, 1)
    running_cancel = await pool.cancel_task(running)
    assert (running_cancel.status, running_cancel.error) == (
        TaskStatus.CANCELLED,
        "cancelled while running",
    )
    assert counts(pool) == (0, 0, 2)
    await jobs.wait_for("cancelled running")

    after = await pool.add_priority_task("ORD", jobs.run, name="after")
    assert (await final_state(pool, after)).status is TaskStatus.SUCCEEDED
    assert jobs.started == ["running", "after"]
    assert pool.get_task(running).status is TaskStatus.CANCELLED
    with pytest.raises(InvalidStateError, match=r"cannot cancel task .* it is cancelled"):
        await pool.cancel_task(running)
    with pytest.raises(InvalidStateError, match="it is succeeded"):
        await pool.cancel_task(after)
    with pytest.raises(NotFoundError, match="task 'nope' not found") as missing:
        await pool.cancel_task("nope")
    assert (missing.value.kind, missing.value.key) == ("task", "nope")


async def test_a_cancelled_task_keeps_its_slot_until_it_has_unwound(jobs, pool):
    release = asyncio.Event()

    async def stubborn() -> str:
        jobs.note("start stubborn")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            jobs.note("unwinding stubborn")
            await release.wait()
        jobs.note("end stubborn")
        return "finished anyway"

    slow = await pool.add_priority_task("ORD", stubborn)
    await jobs.wait_for("start stubborn")
    next_up = await pool.add_priority_task("ORD", jobs.run, name="next")
    assert (await pool.cancel_task(slow)).status is TaskStatus.CANCELLED
    await jobs.wait_for("unwinding stubborn")
    assert counts(pool) == (1, 0, 1)
    release.set()
    assert (await final_state(pool, next_up)).status is TaskStatus.SUCCEEDED
    assert jobs.log == [
        "start stubborn",
        "unwinding stubborn",
        "end stubborn",
        "start next",
        "end next",
    ]
    ignored = pool.get_task(slow)
    assert (ignored.status, ignored.result) == (TaskStatus.CANCELLED, None)


async def test_stop_right_after_a_cancel_records_the_task_once(jobs, pool):
    jobs.hang.add("running")
    running = await pool.add_priority_task("ORD", jobs.run, name="running")
    await jobs.wait_for("start running")
    await pool.cancel_task(running)
    await pool.stop()
    stopped = pool.get_task(running)
    assert (stopped.status, stopped.error) == (TaskStatus.CANCELLED, "cancelled while running")
    assert counts(pool) == (0, 0, 1)
    assert pool.cleanup_old_results(max_age_seconds=0) == 1
    assert counts(pool) == (0, 0, 0)


async def test_unknown_tasks(pool):
    assert pool.get_task_result("nope") is None
    with pytest.raises(NotFoundError):
        pool.get_task("nope")
    with pytest.raises(NotFoundError):
        await anext(pool.watch("nope"))


async def test_cleanup_removes_final_tasks_old_enough(jobs):
    now = [1000.0]
    pool: PriorityQueueManager[str] = PriorityQueueManager(1, retention=60.0, clock=lambda: now[0])
    await pool.start()
    first = await pool.add_priority_task("ORD", jobs.run, name="first")
    await final_state(pool, first)
    now[0] = 1030.0
    second = await pool.add_priority_task("ORD", jobs.run, name="second")
    await final_state(pool, second)
    jobs.hang.add("live")
    live = await pool.add_priority_task("ORD", jobs.run, name="live")
    await jobs.wait_for("start live")

    now[0] = 1059.0
    assert pool.cleanup_old_results() == 0
    now[0] = 1060.0
    assert pool.cleanup_old_results() == 1
    assert pool.get_task_result(first) is None
    with pytest.raises(NotFoundError):
        pool.get_task(first)
    assert pool.get_task_result(second)["success"] is True
    assert counts(pool) == (0, 1, 1)
    assert pool.cleanup_old_results(max_age_seconds=0) == 1
    assert pool.get_task(live).status is TaskStatus.RUNNING
    assert counts(pool) == (0, 1, 0)
    with pytest.raises(ValueError, match="must not be negative"):
        pool.cleanup_old_results(max_age_seconds=-1)
    await pool.stop()


async def test_cleanup_reports_each_removed_task_in_the_same_step(jobs):
    now = [1000.0]
    removed: list[tuple[str, str, bool]] = []
    pool: PriorityQueueManager[str] = PriorityQueueManager(
        1,
        retention=60.0,
        clock=lambda: now[0],
        on_removed=lambda record: removed.append(
            (record.task_id, record.result, pool.get_task_result(record.task_id) is None)
        ),
    )
    await pool.start()
    first = await pool.add_priority_task("ORD", jobs.run, name="first")
    await final_state(pool, first)
    now[0] = 1030.0
    second = await pool.add_priority_task("ORD", jobs.run, name="second")
    await final_state(pool, second)

    now[0] = 1059.0
    assert pool.cleanup_old_results() == 0
    assert removed == []
    now[0] = 1060.0
    assert pool.cleanup_old_results() == 1
    assert removed == [(first, "done first", True)]
    assert await pool.sweep_expired(max_age_seconds=0) == 1
    assert removed == [(first, "done first", True), (second, "done second", True)]
    await pool.stop()


async def test_periodic_cleanup_runs_by_itself(jobs):
    removed = asyncio.Event()
    pool: PriorityQueueManager[str] = PriorityQueueManager(
        1, retention=0.0, sweep_interval=0.001, on_removed=lambda _: removed.set()
    )
    await pool.start()
    task_id = await pool.add_priority_task("ORD", jobs.run, name="x")
    await final_state(pool, task_id)
    await removed.wait()
    assert pool.get_task_result(task_id) is None
    await pool.stop()


async def test_stop_hands_running_tasks_back_and_keeps_queued_ones(jobs, pool):
    jobs.gate("long")
    long = await pool.add_priority_task("ORD", jobs.run, name="long")
    await jobs.wait_for("start long")
    queued = [await pool.add_priority_task("ORD", jobs.run, name=n) for n in ("q1", "q2")]

    await pool.stop()
    await pool.stop()
    assert "cancelled long" in jobs.log
    stopped = pool.get_task(long)
    assert (stopped.status, stopped.started_at, stopped.error) == (TaskStatus.QUEUED, None, "")
    assert [pool.get_task(t).status for t in queued] == [TaskStatus.QUEUED] * 2
    assert counts(pool) == (3, 0, 0)
    with pytest.raises(ClosedError):
        await pool.add_priority_task("ORD", jobs.run, name="late")

    # It runs again first: it keeps its place in line.
    await pool.start()
    await jobs.wait_started_count(2)
    assert jobs.started == ["long", "long"]
    jobs.gates["long"].set()
    assert [(await final_state(pool, t)).status for t in [long, *queued]] == [
        TaskStatus.SUCCEEDED
    ] * 3
    assert jobs.started == ["long", "long", "q1", "q2"]
    assert counts(pool) == (0, 0, 3)


async def test_the_seed_usage_works_as_documented():
    calls = []

    async def my_async_function(param1: str) -> str:
        calls.append(param1)
        return f"handled {param1}"

    await priority_queue_manager.start()
    task_id = await priority_queue_manager.add_priority_task(
        order_req_id="ORD123",
        task_func=my_async_function,
        priority=TaskPriority.HIGH,
        param1="value1",
    )
    async for _ in priority_queue_manager.watch(task_id):
        pass
    result = priority_queue_manager.get_task_result(task_id)
    assert result["success"] is True
    assert result["result"] == "handled value1"
    assert (result["task_id"], result["order_req_id"], result["status"]) == (
        task_id,
        "ORD123",
        "succeeded",
    )
    assert calls == ["value1"]
    stats = priority_queue_manager.get_queue_stats()
    assert (stats["priority_queue_size"], stats["active_tasks"]) == (0, 0)
    assert stats["completed_tasks"] >= 1
    assert priority_queue_manager.cleanup_old_results(max_age_seconds=0) >= 1
    assert priority_queue_manager.get_task_result(task_id) is None
    await priority_queue_manager.stop()
