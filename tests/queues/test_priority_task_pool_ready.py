"""The priority task pool's readiness: a task waits for ready_when outside the
slots, then takes one in priority order; failing, cancelled, timed out or
stopped while it waits."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.polling import final_state
from support.store_doubles import ScriptedStore

from queues.priority_task_pool import PriorityQueueManager, TaskPriority, TaskStatus


class Readiness:
    """A ready_when whose answer per task name the test controls."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.cancelled: list[str] = []
        self.passed: list[str] = []
        self.fail: dict[str, str] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()

    def ready(self, name: str) -> asyncio.Event:
        return self._ready.setdefault(name, asyncio.Event())

    async def __call__(self, kwargs: dict[str, Any]) -> None:
        name = kwargs["name"]
        self._note(self.asked, name)
        if name in self.fail:
            raise RuntimeError(self.fail[name])
        try:
            await self.ready(name).wait()
        except asyncio.CancelledError:
            self._note(self.cancelled, name)
            raise
        self._note(self.passed, name)

    async def wait_asked(self, count: int) -> None:
        await self.wait_until(lambda: len(self.asked) >= count)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    def _note(self, entries: list[str], name: str) -> None:
        entries.append(name)
        self._changed.set()
        self._changed = asyncio.Event()


class Slots:
    """A task function that records each start and holds its slot until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._released: dict[str, asyncio.Event] = {}

    def release(self, name: str) -> None:
        self._released.setdefault(name, asyncio.Event()).set()

    async def run(self, name: str) -> str:
        self.started.append(name)
        await self._released.setdefault(name, asyncio.Event()).wait()
        return name


async def running(pool: PriorityQueueManager[str], task_id: str) -> None:
    async for state in pool.watch(task_id):
        if state.status is TaskStatus.RUNNING:
            return
    raise AssertionError(f"task {task_id} ended without running")


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def slots() -> Slots:
    return Slots()


@pytest.fixture
async def pool(readiness: Readiness) -> AsyncIterator[PriorityQueueManager[str]]:
    one_slot: PriorityQueueManager[str] = PriorityQueueManager(
        1, ready_when=readiness, waiting_for="waiting for its order"
    )
    await one_slot.start()
    yield one_slot
    await one_slot.stop()


async def test_a_task_that_is_not_ready_holds_no_slot(pool, readiness, slots):
    waiting = await pool.add_priority_task("ORD", slots.run, TaskPriority.HIGH, name="waiting")
    readiness.ready("ready").set()
    ready = await pool.add_priority_task("ORD", slots.run, TaskPriority.LOW, name="ready")
    await running(pool, ready)
    assert pool.get_task(waiting).status is TaskStatus.QUEUED
    assert pool.waiting_count == 1
    assert pool.get_queue_stats()["priority_queue_size"] == 1

    readiness.ready("waiting").set()
    slots.release("ready")
    await running(pool, waiting)
    assert pool.waiting_count == 0
    slots.release("waiting")
    assert (await final_state(pool, waiting)).result == "waiting"
    assert slots.started == ["ready", "waiting"]


async def test_ready_tasks_take_a_freed_slot_in_priority_order(pool, readiness, slots):
    readiness.ready("holder").set()
    holder = await pool.add_priority_task("ORD", slots.run, name="holder")
    await running(pool, holder)
    low = await pool.add_priority_task("ORD", slots.run, TaskPriority.LOW, name="low")
    high = await pool.add_priority_task("ORD", slots.run, TaskPriority.HIGH, name="high")
    # LOW became ready first; HIGH still runs first once the slot is free.
    readiness.ready("low").set()
    readiness.ready("high").set()
    await readiness.wait_until(lambda: len(readiness.passed) == 3)
    assert pool.waiting_count == 0
    for name in ("holder", "high", "low"):
        slots.release(name)
    assert [(await final_state(pool, t)).status for t in (holder, high, low)] == [
        TaskStatus.SUCCEEDED
    ] * 3
    assert slots.started == ["holder", "high", "low"]


async def test_a_ready_when_that_raises_fails_the_task_unrun(pool, readiness, slots):
    readiness.fail["doomed"] = "order removed"
    doomed = await pool.add_priority_task("ORD", slots.run, name="doomed")
    failed = await final_state(pool, doomed)
    assert (failed.status, failed.error) == (TaskStatus.FAILED, "RuntimeError: order removed")
    assert failed.started_at is None and slots.started == []
    assert pool.waiting_count == 0


async def test_cancel_and_the_deadline_end_a_waiting_task_and_stop_its_wait(pool, readiness, slots):
    cancelled = await pool.add_priority_task("ORD", slots.run, name="cancelled")
    due = await pool.add_priority_task("ORD", slots.run, deadline=time.time() + 0.05, name="due")
    await readiness.wait_asked(2)

    ended = await pool.cancel_task(cancelled)
    assert (ended.status, ended.error) == (TaskStatus.CANCELLED, "cancelled while queued")
    timed_out = await final_state(pool, due)
    assert (timed_out.status, timed_out.error) == (
        TaskStatus.TIMED_OUT,
        "deadline passed while waiting for its order",
    )
    await readiness.wait_until(lambda: len(readiness.cancelled) == 2)
    assert sorted(readiness.cancelled) == ["cancelled", "due"]
    assert pool.waiting_count == 0 and slots.started == []


async def test_stop_ends_the_waits_and_start_waits_again(pool, readiness, slots):
    task_id = await pool.add_priority_task("ORD", slots.run, name="again")
    await readiness.wait_asked(1)
    await pool.stop()
    assert readiness.cancelled == ["again"]
    assert (pool.get_task(task_id).status, pool.waiting_count) == (TaskStatus.QUEUED, 0)

    await pool.start()
    await readiness.wait_asked(2)
    readiness.ready("again").set()
    await running(pool, task_id)
    slots.release("again")
    assert (await final_state(pool, task_id)).status is TaskStatus.SUCCEEDED


async def test_a_task_committed_while_the_pool_stops_waits_only_after_the_next_start(
    readiness, slots
):
    store = ScriptedStore()
    pool: PriorityQueueManager[str] = PriorityQueueManager(
        1, store=store, task_funcs={"run": slots.run}, ready_when=readiness
    )
    await pool.start()
    store.gate = asyncio.Event()
    adding = asyncio.create_task(pool.add_priority_task("ORD", "run", name="late"))
    await store.entered.wait()
    stopping = asyncio.create_task(pool.stop())
    # One turn of the loop: stop() refuses new tasks before its first await.
    await asyncio.sleep(0)
    store.gate.set()
    task_id = await adding
    await stopping
    assert (readiness.asked, pool.waiting_count) == ([], 0)
    assert pool.get_task(task_id).status is TaskStatus.QUEUED

    await pool.start()
    await readiness.wait_asked(1)
    readiness.ready("late").set()
    await running(pool, task_id)
    slots.release("late")
    assert (await final_state(pool, task_id)).status is TaskStatus.SUCCEEDED
    await pool.stop()
