"""The order tasks over the pool, without gRPC: request ids, progress that outlives
its task, bookkeeping dropped with the pool's records, and what a restart over
the same store brings back."""

import asyncio
import copy
from collections.abc import AsyncIterator

import pytest
from support.polling import poll
from support.requestor_harness import COMPLETED, FAILED, NEW

from queues.errors import NotFoundError, RequestConflictError
from queues.priority_task_pool import TaskPriority, TaskStatus
from queues.storage import MemoryStore
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from requestor_svc.order_follower import (
    MAX_PROPOSAL_BYTES,
    OrderEventsLostError,
    OrderProgress,
    ResultTooLargeError,
)
from requestor_svc.order_job import Placement
from requestor_svc.order_tasks import OrderTask, OrderTasks


def event(sequence: int, kind: int = NEW) -> processor_pb.OrderEvent:
    return processor_pb.OrderEvent(order_req_id="ORD", sequence=sequence, kind=kind)


def placement(order: str = "ORD", **changes: object) -> Placement:
    fields: dict[str, object] = {
        "order_req_id": order,
        "priority": TaskPriority.MEDIUM,
        "timeout": None,
        "submission": quote_pb.Submission(applicant_name="Ada"),
    }
    return Placement(**{**fields, **changes})  # type: ignore[arg-type]


class ScriptedFollow:
    """A follow function that takes the events the test gives it, then fails or
    waits for release."""

    def __init__(self) -> None:
        self.events: dict[str, list[processor_pb.OrderEvent]] = {}
        self.fail: set[str] = set()
        self.release = asyncio.Event()
        self._waiting: dict[str, asyncio.Event] = {}

    def waiting(self, order: str) -> asyncio.Event:
        """Set once the order's follow has taken its events and waits."""
        return self._waiting.setdefault(order, asyncio.Event())

    async def __call__(self, progress: OrderProgress) -> OrderProgress:
        for received in self.events.get(progress.order_req_id, []):
            progress.accept(received)
        if progress.order_req_id in self.fail:
            raise OrderEventsLostError("the processor lost them")
        self.waiting(progress.order_req_id).set()
        await self.release.wait()
        return progress


async def final(tasks: OrderTasks, task_id: str) -> OrderTask:
    async def read() -> OrderTask:
        return tasks.result(task_id)

    return await poll(read, lambda task: task.record.status.is_final, f"task {task_id} final")


@pytest.fixture
def follow() -> ScriptedFollow:
    return ScriptedFollow()


@pytest.fixture
async def tasks(follow: ScriptedFollow) -> AsyncIterator[OrderTasks]:
    started = OrderTasks(
        follow,
        max_concurrent_tasks=1,
        retention=3600.0,
        sweep_interval=60.0,
        default_timeout=None,
    )
    await started.start()
    yield started
    await started.stop()


def test_progress_keeps_each_proposal_once_in_sequence_order():
    progress = OrderProgress("ORD")
    taken = [
        progress.accept(e)
        for e in [event(1), event(2, FAILED), event(1), event(2), event(3), event(4, COMPLETED)]
    ]
    assert taken == [True, True, False, False, True, True]
    assert [(e.sequence, e.kind) for e in progress.proposals] == [(1, NEW), (2, FAILED), (3, NEW)]
    assert (progress.last_sequence, progress.completed) == (4, True)
    assert progress.accept(event(4, COMPLETED)) is False


def test_a_snapshot_does_not_change_with_the_progress():
    progress = OrderProgress("ORD")
    progress.accept(event(1))
    snapshot = progress.snapshot()
    progress.accept(event(2))
    progress.reconnects += 1
    assert ([e.sequence for e in snapshot.proposals], snapshot.reconnects) == ([1], 0)


async def test_a_cancelled_task_keeps_the_progress_it_made(tasks, follow):
    follow.events["ORD"] = [event(1), event(2, FAILED)]
    placed = await tasks.place(placement())
    await follow.waiting("ORD").wait()
    running = tasks.result(placed.task_id)
    assert running.record.status is TaskStatus.RUNNING
    assert running.progress.last_sequence == 2

    cancelled = await tasks.cancel(placed.task_id)
    assert cancelled.record.status is TaskStatus.CANCELLED
    assert [e.sequence for e in cancelled.progress.proposals] == [1, 2]
    assert cancelled.placement == placement()


async def test_a_failed_task_keeps_the_progress_it_made(tasks, follow):
    follow.events["ORD"] = [event(1)]
    follow.fail.add("ORD")
    placed = await tasks.place(placement())
    result = await final(tasks, placed.task_id)
    assert result.record.status is TaskStatus.FAILED
    assert result.record.error == "OrderEventsLostError: the processor lost them"
    assert result.progress.last_sequence == 1


async def test_a_task_placed_without_a_timeout_gets_the_default_deadline(follow):
    now = [1000.0]
    tasks = OrderTasks(
        follow,
        max_concurrent_tasks=1,
        retention=3600.0,
        sweep_interval=60.0,
        default_timeout=600.0,
        clock=lambda: now[0],
    )
    await tasks.start()
    defaulted = await tasks.place(placement("DEFAULT"))
    given = await tasks.place(placement("GIVEN", timeout=5.0))
    assert tasks.result(defaulted.task_id).record.deadline == 1600.0
    assert tasks.result(given.task_id).record.deadline == 1005.0
    # The placement stays as it was placed: a repeat of it is the same request.
    assert tasks.result(defaulted.task_id).placement == placement("DEFAULT")
    await tasks.stop()


def test_proposals_past_what_one_result_can_carry_are_refused_and_not_taken():
    progress = OrderProgress("ORD")
    big = processor_pb.OrderEvent(order_req_id="ORD", sequence=1, kind=NEW, text="x" * 1_000_000)
    taken = 0
    with pytest.raises(ResultTooLargeError, match="order 'ORD' has more proposals than one"):
        for sequence in range(1, 10):
            big.sequence = sequence
            progress.accept(copy.copy(big))
            taken += 1
    assert taken == 4 and len(progress.proposals) == 4
    assert progress.last_sequence == 4
    assert progress.proposal_bytes == sum(e.ByteSize() for e in progress.proposals)
    assert progress.proposal_bytes <= MAX_PROPOSAL_BYTES


async def test_a_request_id_places_one_task_per_request(tasks):
    first = await tasks.place(placement(), "req-1")
    again = await tasks.place(placement(), "req-1")
    assert again == first
    assert tasks.stats().priority_queue_size + tasks.stats().active_tasks == 1
    for different in [
        placement("OTHER"),
        placement(priority=TaskPriority.HIGH),
        placement(timeout=5.0),
        placement(submission=quote_pb.Submission(applicant_name="Bob")),
        placement(submission=None),
    ]:
        with pytest.raises(RequestConflictError):
            await tasks.place(different, "req-1")
    without_id = [await tasks.place(placement()) for _ in range(2)]
    assert len({first.task_id, *(p.task_id for p in without_id)}) == 3


async def test_the_retention_sweep_drops_the_task_and_its_request_id(follow):
    now = [1000.0]
    tasks = OrderTasks(
        follow,
        max_concurrent_tasks=1,
        retention=60.0,
        sweep_interval=0.001,
        default_timeout=None,
        clock=lambda: now[0],
    )
    await tasks.start()
    follow.release.set()
    placed = await tasks.place(placement(timeout=30.0), "req-1")
    done = await final(tasks, placed.task_id)
    assert done.record.status is TaskStatus.SUCCEEDED
    assert done.record.deadline == 1030.0

    now[0] = 1060.0

    async def removed() -> bool:
        try:
            tasks.result(placed.task_id)
        except NotFoundError:
            return True
        return False

    await poll(removed, bool, "the task removed")
    assert tasks.stats().completed_tasks == 0
    replaced = await tasks.place(placement("OTHER"), "req-1")
    assert replaced.task_id != placed.task_id
    await tasks.stop()


async def test_a_restart_brings_back_each_task_its_request_id_and_what_it_collected(follow):
    store = MemoryStore()
    before = OrderTasks(
        follow,
        max_concurrent_tasks=1,
        retention=3600.0,
        sweep_interval=60.0,
        default_timeout=None,
        store=store,
    )
    await before.start()
    follow.events["FAIL"] = [event(1), event(2, FAILED)]
    follow.fail.add("FAIL")
    failed = await before.place(placement("FAIL", timeout=60.0), "req-1")
    ended = await final(before, failed.task_id)
    follow.events["RUN"] = [event(1)]
    running = await before.place(placement("RUN"))
    await follow.waiting("RUN").wait()
    queued = await before.place(placement("QUEUED", priority=TaskPriority.HIGH))
    crashed = copy.deepcopy(store)
    await before.stop()

    again = ScriptedFollow()
    again.events = {"RUN": [event(1), event(2), event(3, COMPLETED)], "QUEUED": [event(1)]}
    again.release.set()
    after = OrderTasks(
        again,
        max_concurrent_tasks=1,
        retention=3600.0,
        sweep_interval=60.0,
        default_timeout=None,
        store=crashed,
    )
    await after.start()
    back = after.result(failed.task_id)
    assert (back.record.status, back.record.error, back.placement) == (
        TaskStatus.FAILED,
        "OrderEventsLostError: the processor lost them",
        placement("FAIL", timeout=60.0),
    )
    assert (back.record.created_at, back.record.completed_at, back.record.deadline) == (
        ended.record.created_at,
        ended.record.completed_at,
        ended.record.deadline,
    )
    assert back.progress == ended.progress
    assert [e.sequence for e in back.progress.proposals] == [1, 2]
    assert await after.place(placement("FAIL", timeout=60.0), "req-1") == failed
    with pytest.raises(RequestConflictError):
        await after.place(placement("FAIL"), "req-1")

    for task_id in (running.task_id, queued.task_id):
        assert (await final(after, task_id)).record.status is TaskStatus.SUCCEEDED
    assert after.result(running.task_id).progress.last_sequence == 3
    await after.stop()
