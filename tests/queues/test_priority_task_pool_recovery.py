"""The priority task pool over a store: what a restart (a new pool over the same
store) brings back, what a crash leaves, and what a failing store refuses."""

import asyncio
import copy
import time
from typing import Any

import pytest
from support.polling import final_state
from support.scripted import Scripted
from support.store_doubles import ScriptedStore

from queues.errors import ClosedError
from queues.priority_task_pool import PriorityQueueManager, TaskPriority, TaskStatus
from queues.storage import MemoryStore, Put, StoreError


class Work(Scripted):
    """The durable task function "step": it adds to its `collected` argument,
    then waits for its gate (if it has one), then fails or returns."""

    async def step(self, name: str, collected: list[str], fail: str = "") -> list[str]:
        collected.append(f"{name} began")
        await self.play(name, fail)
        return [*collected, f"{name} done"]


def durable_pool(
    store: MemoryStore, work: Work, slots: int = 1, **options: Any
) -> PriorityQueueManager[list[str]]:
    return PriorityQueueManager(
        slots,
        store=store,
        task_funcs={"step": work.step},
        partial_result=lambda kwargs: list(kwargs["collected"]),
        **options,
    )


async def add(
    pool: PriorityQueueManager[list[str]],
    name: str,
    priority: TaskPriority = TaskPriority.MEDIUM,
    **options: Any,
) -> str:
    return await pool.add_priority_task(
        f"ORD-{name}", "step", priority, name=name, collected=[], **options
    )


def counts(pool: PriorityQueueManager[Any]) -> tuple[int, int, int]:
    stats = pool.get_queue_stats()
    return stats["priority_queue_size"], stats["active_tasks"], stats["completed_tasks"]


async def test_queued_and_running_tasks_come_back_in_line_with_their_ids():
    store, work = MemoryStore(), Work()
    before = durable_pool(store, work)
    await before.start()
    work.gate("running")
    running = await add(before, "running")
    await work.wait_started_count(1)
    queued = {
        name: await add(before, name, priority)
        for name, priority in [
            ("low", TaskPriority.LOW),
            ("medium", TaskPriority.MEDIUM),
            ("high1", TaskPriority.HIGH),
            ("high2", TaskPriority.HIGH),
        ]
    }
    crashed = copy.deepcopy(store)
    await before.stop()
    # Stopping wrote nothing: a running task is queued in the store already.
    assert await store.load("tasks") == await crashed.load("tasks")

    work = Work()
    after = durable_pool(crashed, work)
    await after.start()
    assert counts(after) == (5, 0, 0)
    back = after.get_task(running)
    assert (back.status, back.started_at, back.kwargs) == (
        TaskStatus.QUEUED,
        None,
        {"name": "running", "collected": []},
    )
    assert [after.get_task(t).queue_position for t in queued.values()] == [0, 0, 0, 1]
    work.gate("high1")
    await work.wait_started_count(1)
    # Added after the restart, it queues behind the HIGH tasks from before it.
    newer = await add(after, "newer", TaskPriority.HIGH)
    work.gates["high1"].set()
    for task_id in [running, *queued.values(), newer]:
        assert (await final_state(after, task_id)).status is TaskStatus.SUCCEEDED
    assert work.started == ["high1", "high2", "newer", "running", "medium", "low"]
    # It ran again from the start, with the arguments it was queued with.
    assert after.get_task(running).result == ["running began", "running done"]
    await after.stop()


def version_1_task(name: str, number: int, seq: int) -> Put:
    """A queued task as the program before task records' version 2 wrote it,
    numbering priorities HIGH=1, MEDIUM=2, LOW=3."""
    record = {
        "order_req_id": f"ORD-{name}",
        "priority": number,
        "seq": seq,
        "func": "step",
        "kwargs": {"name": name, "collected": []},
        "status": "queued",
        "created_at": 1.0,
        "deadline": None,
        "queue_position": 0,
        "started_at": None,
        "completed_at": None,
        "result": None,
        "error": "",
    }
    return Put("tasks", name, {"version": 1, **record} if seq % 2 else record)


async def test_version_1_tasks_come_back_with_their_priority_and_run_in_its_order():
    store, work = MemoryStore(), Work()
    await store.commit(
        [version_1_task("low", 3, 1), version_1_task("medium", 2, 2), version_1_task("high", 1, 3)]
    )
    pool = durable_pool(store, work)
    await pool.start()
    assert [pool.get_task(name).priority for name in ("low", "medium", "high")] == [
        TaskPriority.LOW,
        TaskPriority.MEDIUM,
        TaskPriority.HIGH,
    ]
    for name in ("low", "medium", "high"):
        assert (await final_state(pool, name)).status is TaskStatus.SUCCEEDED
    assert work.started == ["high", "medium", "low"]
    # Each end was written as version 2, in today's numbers.
    written = dict(await store.load("tasks"))
    assert [(written[n]["version"], written[n]["priority"]) for n in ("low", "high")] == [
        (2, 1),
        (2, 3),
    ]
    await pool.stop()


async def test_finished_tasks_come_back_as_they_were():
    store, work = MemoryStore(), Work()
    before = durable_pool(store, work, slots=2)
    await before.start()
    ok = await add(before, "ok")
    bad = await add(before, "bad", fail="no quote")
    for name in ("cut", "cancelled"):
        work.gate(name)
    cut = await add(before, "cut", deadline=time.time() + 0.05)
    cancelled = await add(before, "cancelled")
    # Four tasks ahead of it for two slots: it is surely still queued.
    queued = await add(before, "queued")
    await before.cancel_task(queued)
    await work.wait_started_count(4)
    await before.cancel_task(cancelled)
    ends = {task_id: await final_state(before, task_id) for task_id in (ok, bad, cut)}
    ends |= {t: before.get_task(t) for t in (cancelled, queued)}
    await before.stop()

    after = durable_pool(store, Work(), slots=2)
    await after.start()
    assert {t: after.get_task(t) for t in ends} == ends
    assert {t: (r.status, r.error, r.result) for t, r in ends.items()} == {
        ok: (TaskStatus.SUCCEEDED, "", ["ok began", "ok done"]),
        bad: (TaskStatus.FAILED, "RuntimeError: no quote", ["bad began"]),
        cut: (TaskStatus.TIMED_OUT, "deadline passed while running", ["cut began"]),
        cancelled: (TaskStatus.CANCELLED, "cancelled while running", ["cancelled began"]),
        queued: (TaskStatus.CANCELLED, "cancelled while queued", []),
    }
    assert all(r.started_at is not None for t, r in ends.items() if t != queued)
    assert counts(after) == (0, 0, 5)
    await after.stop()


async def test_a_deadline_that_passed_while_down_times_the_task_out_unrun():
    now = [1000.0]
    store, work = MemoryStore(), Work()
    before = durable_pool(store, work, clock=lambda: now[0])
    await before.start()
    work.gate("blocker")
    await add(before, "blocker")
    await work.wait_started_count(1)
    due = await add(before, "due", deadline=1100.0)
    later = await add(before, "later", deadline=5000.0)
    crashed = copy.deepcopy(store)
    await before.stop()

    now[0] = 1200.0
    work = Work()
    after = durable_pool(crashed, work, clock=lambda: now[0])
    await after.start()
    lapsed = after.get_task(due)
    assert (lapsed.status, lapsed.error, lapsed.result) == (
        TaskStatus.TIMED_OUT,
        "deadline passed while the pool was stopped",
        [],
    )
    assert (lapsed.started_at, lapsed.completed_at, lapsed.deadline) == (None, 1200.0, 1100.0)
    assert (await final_state(after, later)).status is TaskStatus.SUCCEEDED
    assert "due" not in work.started
    await after.stop()

    # The time-out was committed: it does not depend on the clock of the next start.
    now[0] = 1000.0
    again = durable_pool(crashed, Work(), clock=lambda: now[0])
    await again.start()
    assert again.get_task(due) == lapsed
    await again.stop()


async def test_a_task_the_store_refuses_is_not_queued():
    store, work = ScriptedStore(), Work()
    pool = durable_pool(store, work)
    await pool.start()
    store.failing = True
    with pytest.raises(StoreError, match="disk full"):
        await add(pool, "refused")
    assert (pool.tasks(), counts(pool)) == ([], (0, 0, 0))

    store.failing = False
    accepted = await add(pool, "accepted")
    assert (await final_state(pool, accepted)).status is TaskStatus.SUCCEEDED
    assert work.started == ["accepted"]
    assert [key for key, _ in await store.load("tasks")] == [accepted]
    await pool.stop()


async def test_a_cancel_the_store_refuses_leaves_the_task_running():
    store, work = ScriptedStore(), Work()
    pool = durable_pool(store, work)
    await pool.start()
    work.gate("running")
    running = await add(pool, "running")
    await work.wait_started_count(1)
    store.failing = True
    with pytest.raises(StoreError, match="disk full"):
        await pool.cancel_task(running)
    assert pool.get_task(running).status is TaskStatus.RUNNING

    store.failing = False
    work.gates["running"].set()
    done = await final_state(pool, running)
    assert (done.status, done.result) == (TaskStatus.SUCCEEDED, ["running began", "running done"])
    await pool.stop()


async def test_an_end_the_store_refuses_is_retried_until_recorded():
    store, work = ScriptedStore(), Work()
    pool = durable_pool(store, work)
    await pool.start()
    work.gate("running")
    running = await add(pool, "running")
    await work.wait_started_count(1)
    store.failing = True
    work.gates["running"].set()
    await store.refusals.get()
    await store.refusals.get()
    # Not recorded, so not visible: it still holds its slot.
    assert pool.get_task(running).status is TaskStatus.RUNNING
    assert counts(pool) == (0, 1, 0)

    store.failing = False
    assert (await final_state(pool, running)).status is TaskStatus.SUCCEEDED
    [(_, written)] = await store.load("tasks")
    assert (written["status"], written["result"]) == (
        "succeeded",
        ["running began", "running done"],
    )
    await pool.stop()


async def test_a_caller_that_goes_away_cannot_split_commit_from_queueing():
    store, work = ScriptedStore(), Work()
    store.gate = asyncio.Event()
    pool = durable_pool(store, work)
    await pool.start()
    adding = asyncio.create_task(add(pool, "orphan"))
    await store.entered.wait()
    adding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await adding
    assert pool.tasks() == []

    store.gate.set()
    # The pool queues it in the same step as the commit returns.
    await store.committed.wait()
    [record] = pool.tasks()
    [(key, _)] = await store.load("tasks")
    assert key == record.task_id
    assert (await final_state(pool, key)).status is TaskStatus.SUCCEEDED
    await pool.stop()


async def test_cleanup_deletes_from_the_store_first():
    now = [1000.0]
    store, work = ScriptedStore(), Work()
    pool = durable_pool(store, work, retention=60.0, clock=lambda: now[0])
    await pool.start()
    old = await add(pool, "old")
    await final_state(pool, old)
    now[0] = 1030.0
    young = await add(pool, "young")
    await final_state(pool, young)
    with pytest.raises(TypeError, match="sweep_expired"):
        pool.cleanup_old_results()

    now[0] = 1065.0
    store.failing = True
    with pytest.raises(StoreError):
        await pool.sweep_expired()
    assert {r.task_id for r in pool.tasks()} == {old, young}
    store.failing = False
    assert await pool.sweep_expired() == 1
    assert {r.task_id for r in pool.tasks()} == {young}
    assert [key for key, _ in await store.load("tasks")] == [young]
    await pool.stop()

    after = durable_pool(store, Work(), clock=lambda: now[0])
    await after.start()
    assert [r.task_id for r in after.tasks()] == [young]
    await after.stop()


async def test_a_pool_with_a_store_runs_named_functions_after_its_first_start():
    work = Work()
    pool = durable_pool(MemoryStore(), work)
    with pytest.raises(ClosedError):
        await add(pool, "early")
    await pool.start()
    with pytest.raises(ValueError, match="by their name"):
        await pool.add_priority_task("ORD", work.step, name="x", collected=[])
    with pytest.raises(ValueError, match="no task function is registered as 'nope'"):
        await pool.add_priority_task("ORD", "nope")
    with pytest.raises(TypeError):
        await pool.add_priority_task("ORD", "step", name="x", collected=[], bad={1, 2})
    assert pool.tasks() == []
    await pool.stop()


async def test_a_function_no_longer_registered_fails_its_task_after_a_restart():
    store, work = MemoryStore(), Work()
    before = durable_pool(store, work)
    await before.start()
    work.gate("blocker")
    await add(before, "blocker")
    await work.wait_started_count(1)
    orphan = await add(before, "orphan")
    crashed = copy.deepcopy(store)
    await before.stop()

    after: PriorityQueueManager[list[str]] = PriorityQueueManager(store=crashed)
    await after.start()
    failed = await final_state(after, orphan)
    assert (failed.status, failed.error) == (
        TaskStatus.FAILED,
        "LookupError: no task function is registered as 'step'",
    )
    await after.stop()


async def test_a_record_this_program_cannot_read_refuses_the_start():
    store = MemoryStore()
    await store.commit([Put("tasks", "t1", {"x": 1})])
    pool = durable_pool(store, Work())
    with pytest.raises(StoreError, match="record 't1' of collection 'tasks' is broken"):
        await pool.start()
    with pytest.raises(ClosedError):
        await add(pool, "x")
