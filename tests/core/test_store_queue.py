"""The message queue over the durable core (queues/store_queue.py), on every
backend: the quote queue's promises, with its state in the store, so that two
queues over one store are one queue."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.polling import poll

from queues.backoff import Backoff
from queues.core.job_store import JobStore
from queues.errors import (
    BatchRequestConflictError,
    ClosedError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.message import Message, MessageStatus, NewMessage, Outcome, Priority, ReviewDecision
from queues.store_queue import StoreMessageQueue

FAST = Backoff(base=0.01, cap=0.02, jitter=0.0)
Queue = StoreMessageQueue[str, str]


class Pricing:
    """A handler whose attempts wait at their payload's gate, fail while the
    payload has failures left, and ask for review when told to."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, int] = {}
        self.reviews: dict[str, str] = {}

    def gate(self, payload: str) -> asyncio.Event:
        return self.gates.setdefault(payload, asyncio.Event())

    async def __call__(self, payload: str) -> Outcome[str]:
        self.started.append(payload)
        if payload in self.gates:
            await self.gates[payload].wait()
        if self.failures.get(payload, 0) > 0:
            self.failures[payload] -= 1
            raise RuntimeError(f"boom {payload}")
        return Outcome(f"priced {payload}", self.reviews.get(payload, ""))


@pytest.fixture
async def make_queue(job_store: JobStore) -> AsyncIterator[Callable[..., Any]]:
    made: list[Queue] = []

    async def make(handler: Pricing, **options: Any) -> Queue:
        queue: Queue = StoreMessageQueue(
            handler, store=job_store, backoff=FAST, **{"workers": 1, **options}
        )
        await queue.start()
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.stop(grace=0)


async def final(queue: Queue, message_id: str) -> Message[str, str]:
    return await poll(
        lambda: queue.get(message_id), lambda m: m.status.is_final, f"{message_id} final"
    )


async def test_messages_are_priced_highest_priority_first(make_queue) -> None:
    pricing = Pricing()
    pricing.gate("first")
    queue = await make_queue(pricing)
    first = await queue.submit("first", priority=Priority.NORMAL)
    await poll(lambda: pricing.started, lambda s: s == ["first"], "the first attempt")
    low = await queue.submit("low", priority=Priority.LOW)
    urgent = await queue.submit("urgent", priority=Priority.URGENT)
    normal = await queue.submit("normal", priority=Priority.NORMAL)
    assert (low.position, urgent.position, normal.position) == (0, 0, 1)
    pricing.gate("first").set()
    for submitted in (first, low, urgent, normal):
        done = await final(queue, submitted.message.id)
        assert (done.status, done.result) == (
            MessageStatus.COMPLETED,
            f"priced {submitted.message.payload}",
        )
    assert pricing.started == ["first", "urgent", "normal", "low"]


async def test_failures_retry_then_dead_letter_and_redrive_brings_them_back(make_queue) -> None:
    pricing = Pricing()
    pricing.failures = {"flaky": 1, "broken": 5}
    queue = await make_queue(pricing, max_retries=2)
    flaky = await queue.submit("flaky", priority=Priority.NORMAL)
    broken = await queue.submit("broken", priority=Priority.NORMAL)
    done = await final(queue, flaky.message.id)
    assert (done.status, done.retry_count, done.error_message) == (MessageStatus.COMPLETED, 1, "")
    dead = await final(queue, broken.message.id)
    assert (dead.status, dead.retry_count, dead.dead_lettered) == (MessageStatus.FAILED, 3, True)
    assert dead.error_message == "RuntimeError: boom broken"
    assert (await queue.stats()).dead_letters == 1
    listed, _ = await queue.list_messages(dead_lettered_only=True)
    assert [m.id for m in listed] == [broken.message.id]
    pricing.failures["broken"] = 0
    redriven = await queue.redrive(broken.message.id)
    assert (redriven.status, redriven.retry_count) == (MessageStatus.PENDING, 0)
    assert (await final(queue, broken.message.id)).status is MessageStatus.COMPLETED
    with pytest.raises(InvalidStateError, match="it is completed"):
        await queue.redrive(broken.message.id)


async def test_a_result_for_review_waits_for_a_decision(make_queue) -> None:
    pricing = Pricing()
    pricing.reviews = {"big": "coverage over the limit", "odd": "looks odd"}
    queue = await make_queue(pricing)
    big = await queue.submit("big", priority=Priority.NORMAL)
    odd = await queue.submit("odd", priority=Priority.NORMAL)
    for submitted in (big, odd):
        await poll(
            lambda s=submitted: queue.get(s.message.id),
            lambda m: m.status is MessageStatus.AWAITING_REVIEW,
            "awaiting review",
        )
    approved = await queue.review(big.message.id, ReviewDecision.APPROVE, "ana", "fine")
    assert (approved.status, approved.result, approved.review_reason) == (
        MessageStatus.COMPLETED,
        "priced big",
        "coverage over the limit",
    )
    assert approved.review is not None
    assert (approved.review.reviewer, approved.review.note) == ("ana", "fine")
    rejected = await queue.review(odd.message.id, ReviewDecision.REJECT, "bo")
    assert rejected.status is MessageStatus.REJECTED
    with pytest.raises(InvalidStateError, match=r"cannot review message .*: it is completed"):
        await queue.review(big.message.id, ReviewDecision.APPROVE, "ana")


async def test_cancel_takes_a_waiting_or_running_message_out(make_queue) -> None:
    pricing = Pricing()
    pricing.gate("running")
    queue = await make_queue(pricing)
    running = await queue.submit("running", priority=Priority.NORMAL)
    waiting = await queue.submit("waiting", priority=Priority.NORMAL)
    await poll(lambda: pricing.started, lambda s: s == ["running"], "the attempt")
    assert (await queue.cancel(waiting.message.id)).status is MessageStatus.CANCELLED
    assert (await queue.cancel(running.message.id)).status is MessageStatus.CANCELLED
    pricing.gate("running").set()
    # The attempt that was running ends, and its outcome is dropped.
    after = await queue.submit("after", priority=Priority.NORMAL)
    assert (await final(queue, after.message.id)).status is MessageStatus.COMPLETED
    assert (await queue.get(running.message.id)).status is MessageStatus.CANCELLED
    assert pricing.started == ["running", "after"]
    with pytest.raises(InvalidStateError, match="it is cancelled"):
        await queue.cancel(running.message.id)
    with pytest.raises(NotFoundError):
        await queue.cancel("nope")


async def test_a_watch_follows_every_state_to_the_end(make_queue) -> None:
    pricing = Pricing()
    pricing.gate("x")
    pricing.failures = {"x": 1}
    queue = await make_queue(pricing)
    submitted = await queue.submit("x", priority=Priority.NORMAL)
    seen: list[tuple[MessageStatus, int]] = []

    async def follow() -> None:
        async for message in queue.watch(submitted.message.id):
            seen.append((message.status, message.retry_count))

    watching = asyncio.create_task(follow())
    await poll(lambda: pricing.started, lambda s: s == ["x"], "the attempt")
    pricing.gate("x").set()
    await asyncio.wait_for(watching, 30)
    assert seen[0][0] in (MessageStatus.PENDING, MessageStatus.PROCESSING)
    assert (MessageStatus.PENDING, 1) in seen, "the retry was seen"
    assert seen[-1] == (MessageStatus.COMPLETED, 1)


async def test_a_request_id_makes_one_message(make_queue) -> None:
    queue = await make_queue(Pricing(), workers=0)
    first = await queue.submit("a", priority=Priority.NORMAL, request_id="r1")
    again = await queue.submit("a", priority=Priority.NORMAL, request_id="r1")
    assert again.duplicate and again.message.id == first.message.id
    with pytest.raises(RequestConflictError, match="'r1' was already used"):
        await queue.submit("b", priority=Priority.NORMAL, request_id="r1")


async def test_a_batch_is_queued_in_order_all_or_none(make_queue) -> None:
    queue = await make_queue(Pricing(), workers=0, max_size=4)
    answers = await queue.submit_many(
        [
            NewMessage("a", Priority.NORMAL),
            NewMessage("b", Priority.HIGH, "rb"),
            NewMessage("c", Priority.NORMAL),
        ]
    )
    assert [a.position for a in answers] == [0, 0, 2]
    seqs = [a.message.seq for a in answers]
    assert seqs == sorted(seqs)
    with pytest.raises(QueueFullError) as full:
        await queue.submit_many([NewMessage("d", Priority.LOW), NewMessage("e", Priority.LOW)])
    assert full.value.retry_after >= 0.5
    with pytest.raises(BatchRequestConflictError, match="item 1: "):
        await queue.submit_many(
            [NewMessage("f", Priority.LOW), NewMessage("x", Priority.HIGH, "rb")]
        )
    with pytest.raises(ValueError, match="item 1 repeats request_id 'z'"):
        await queue.submit_many(
            [NewMessage("g", Priority.LOW, "z"), NewMessage("g", Priority.LOW, "z")]
        )
    assert (await queue.stats()).pending == 3


async def test_list_pages_in_creation_order_with_filters(make_queue) -> None:
    queue = await make_queue(Pricing(), workers=0)
    ids = [
        (await queue.submit(f"m{n}", priority=Priority.HIGH if n % 2 else Priority.LOW)).message.id
        for n in range(7)
    ]
    page, cursor = await queue.list_messages(limit=3)
    assert [m.id for m in page] == ids[:3] and cursor == page[-1].seq
    rest, end = await queue.list_messages(after_seq=cursor, limit=10)
    assert [m.id for m in rest] == ids[3:] and end is None
    high, _ = await queue.list_messages(priority=Priority.HIGH, limit=10)
    assert [m.id for m in high] == ids[1::2]
    pending, _ = await queue.list_messages(status=MessageStatus.PENDING, limit=2)
    assert [m.id for m in pending] == ids[:2]


async def test_stats_are_exact(make_queue) -> None:
    pricing = Pricing()
    pricing.gate("slow")
    queue = await make_queue(pricing, max_size=10)
    await queue.submit("slow", priority=Priority.HIGH)
    await poll(lambda: pricing.started, lambda s: s == ["slow"], "the attempt")
    for n in range(3):
        await queue.submit(f"w{n}", priority=Priority.LOW)
    stats = await queue.stats()
    assert (stats.pending, stats.processing, stats.max_size, stats.workers) == (3, 1, 10, 1)
    assert stats.oldest_pending is not None and stats.longest_processing_seconds >= 0
    by_priority = {p.priority: (p.pending, p.processing) for p in stats.by_priority}
    assert by_priority[Priority.LOW] == (3, 0) and by_priority[Priority.HIGH] == (0, 1)


async def test_run_inline_answers_the_one_attempts_end(make_queue) -> None:
    pricing = Pricing()
    pricing.failures = {"bad": 1}
    queue = await make_queue(pricing)
    good = await queue.run_inline("good", priority=Priority.HIGH)
    assert (good.status, good.result) == (MessageStatus.COMPLETED, "priced good")
    bad = await queue.run_inline("bad", priority=Priority.HIGH)
    assert (bad.status, bad.dead_lettered, bad.retry_count) == (MessageStatus.FAILED, False, 1)
    assert (await queue.stats()).dead_letters == 0
    with pytest.raises(InvalidStateError, match="failed but not dead-lettered"):
        await queue.redrive(bad.id)


async def test_the_sweep_removes_messages_after_their_retention(make_queue) -> None:
    queue = await make_queue(Pricing(), retention=0.0)
    done = await queue.submit("x", priority=Priority.NORMAL)
    await final(queue, done.message.id)
    assert await queue.sweep_expired() == 1
    with pytest.raises(NotFoundError):
        await queue.get(done.message.id)


async def test_two_queues_over_one_store_are_one_queue(make_queue) -> None:
    pricing = Pricing()
    api = await make_queue(Pricing(), workers=0)
    worker = await make_queue(pricing, workers=2)
    submitted = await api.submit("shared", priority=Priority.NORMAL, request_id="r")
    assert (await worker.submit("shared", priority=Priority.NORMAL, request_id="r")).duplicate
    seen = [m.status async for m in api.watch(submitted.message.id)]
    assert seen[-1] is MessageStatus.COMPLETED
    assert pricing.started == ["shared"]
    assert (await api.stats()).completed == 1


async def test_a_stopped_queue_accepts_nothing(make_queue) -> None:
    queue = await make_queue(Pricing())
    await queue.stop()
    with pytest.raises(ClosedError):
        await queue.submit("late", priority=Priority.NORMAL)


async def test_the_periodic_sweep_runs_only_where_it_holds_the_lead(job_store, make_queue) -> None:
    # Another replica holds the sweep's lead, for longer than this test runs.
    assert await job_store.lead("sweep:messages", "elsewhere", ttl=1e12, now=0.0)
    queue = await make_queue(Pricing(), retention=0.0, sweep_interval=0.02)
    done = await queue.submit("x", priority=Priority.NORMAL)
    await final(queue, done.message.id)
    leads = []
    real_lead = job_store.lead

    async def counted(*args: Any, **kwargs: Any) -> bool:
        leads.append(await real_lead(*args, **kwargs))
        return leads[-1]

    job_store.lead = counted  # type: ignore[method-assign]
    await poll(lambda: len(leads), lambda n: n >= 3, "three sweep ticks")
    assert not any(leads)
    assert (await queue.get(done.message.id)).status is MessageStatus.COMPLETED
    # The other replica's lead runs out: this one takes it and sweeps.
    assert await real_lead("sweep:messages", "elsewhere", ttl=-1e12, now=0.0)
    await poll(lambda: queue.list_messages(), lambda page: page[0] == [], "the sweep")
    assert any(leads)
