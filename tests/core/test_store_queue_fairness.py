"""Aging, fairness keys, the cap per key and scheduled messages, end to end
through the message queue's workers on every backend; with PostgreSQL, over
queues sharing one store as replicas do."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.polling import poll

from queues.core.fairness import ClaimPolicy
from queues.core.job_store import JobStore
from queues.message import Message, MessageStatus, Outcome, Priority
from queues.store_queue import StoreMessageQueue

Queue = StoreMessageQueue[str, str]
AGING = 1.0


class Recording:
    """A handler that records what ran, and how many of each key's at once;
    attempts of a name in gated wait for its gate."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.running: dict[str, int] = {}
        self.most_running: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.after: Callable[[str], Any] | None = None

    async def __call__(self, payload: str) -> Outcome[str]:
        key = payload.split("-")[0]
        self.order.append(payload)
        self.running[key] = self.running.get(key, 0) + 1
        self.most_running[key] = max(self.most_running.get(key, 0), self.running[key])
        try:
            if payload in self.gates:
                await self.gates[payload].wait()
            if self.after is not None:
                await self.after(payload)
        finally:
            self.running[key] -= 1
        return Outcome(f"priced {payload}")


@pytest.fixture
async def make_queue(job_store: JobStore) -> AsyncIterator[Callable[..., Any]]:
    made: list[Queue] = []

    async def make(handler: Recording, **options: Any) -> Queue:
        queue: Queue = StoreMessageQueue(handler, store=job_store, **{"workers": 1, **options})
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


async def test_low_is_served_within_three_intervals_under_saturating_high(make_queue) -> None:
    # The queue's clock is the test's: each attempt takes a tenth of an
    # interval, and puts another HIGH in, so HIGH never runs out.
    now = [1000.0]
    handler = Recording()
    queue = await make_queue(
        handler,
        clock=lambda: now[0],
        policy=ClaimPolicy(aging_interval=AGING, top_priority=int(Priority.URGENT)),
    )

    async def saturate(payload: str) -> None:
        now[0] += AGING / 10
        await queue.submit(f"high-{len(handler.order)}", priority=Priority.HIGH)

    handler.after = saturate
    first = handler.gates["high-first"] = asyncio.Event()
    await queue.submit("high-first", priority=Priority.HIGH)
    await poll(lambda: handler.order, lambda order: order == ["high-first"], "the first HIGH runs")
    for n in range(5):
        await queue.submit(f"high-{n}", priority=Priority.HIGH)
    low = await queue.submit("low", priority=Priority.LOW)
    first.set()
    done = await final(queue, low.message.id)
    assert done.status is MessageStatus.COMPLETED
    assert done.started_at is not None
    waited = done.started_at - done.created_at
    # LOW is NORMAL after one interval and HIGH after two, when it goes
    # before every HIGH submitted as HIGH.
    assert 2 * AGING <= waited < 3 * AGING, waited
    assert done.priority is Priority.LOW


async def test_without_aging_low_waits_while_high_keeps_coming(make_queue) -> None:
    handler = Recording()
    queue = await make_queue(handler)
    ran = 0

    async def saturate(payload: str) -> None:
        nonlocal ran
        ran += 1
        if ran < 30:
            await queue.submit(f"high-{ran}", priority=Priority.HIGH)

    hold = handler.gates["high-0"] = asyncio.Event()
    await queue.submit("high-0", priority=Priority.HIGH)
    await poll(lambda: handler.order, lambda order: order == ["high-0"], "the worker held")
    handler.after = saturate
    low = await queue.submit("low", priority=Priority.LOW)
    hold.set()
    await final(queue, low.message.id)
    # Nothing ages it: it runs only once HIGH has run out.
    assert handler.order[-1] == "low" and len(handler.order) == 31, handler.order


async def test_a_burst_and_a_few_interleave_across_replicas(make_queue) -> None:
    handler = Recording()
    accepting = await make_queue(handler, workers=0)
    gate = handler.gates["hold-0"] = asyncio.Event()
    pricing = await make_queue(handler)
    await accepting.submit("hold-0", priority=Priority.NORMAL, fairness_key="hold")
    await poll(lambda: handler.order, lambda order: order == ["hold-0"], "the worker held")
    for n in range(200):
        await accepting.submit(f"A-{n}", priority=Priority.NORMAL, fairness_key="A")
    few = [
        await pricing.submit(f"B-{n}", priority=Priority.NORMAL, fairness_key="B") for n in range(5)
    ]
    stats = await accepting.stats()
    assert stats.busiest_keys == (("A", 200), ("B", 5))
    gate.set()
    for submitted in few:
        await final(accepting, submitted.message.id)
    order = handler.order[1:]
    for n in range(5):
        since = order.index(f"B-{n - 1}") + 1 if n else 0
        assert order.index(f"B-{n}") - since <= 1, order[:12]


async def test_the_cap_per_key_holds_over_replicas(make_queue) -> None:
    handler = Recording()
    capped = ClaimPolicy(max_per_key=2)
    replicas = [await make_queue(handler, workers=2, policy=capped) for _ in range(2)]
    for n in range(8):
        handler.gates[f"A-{n}"] = asyncio.Event()
    burst = [
        await replicas[n % 2].submit(f"A-{n}", priority=Priority.NORMAL, fairness_key="A")
        for n in range(8)
    ]
    others = [
        await replicas[0].submit(f"B-{n}", priority=Priority.NORMAL, fairness_key="B")
        for n in range(3)
    ]
    for submitted in others:
        await final(replicas[0], submitted.message.id)
    assert sorted(name for name in handler.order if name.startswith("A")) == ["A-0", "A-1"]
    for gate in handler.gates.values():
        gate.set()
    for submitted in burst:
        await final(replicas[1], submitted.message.id)
    assert handler.most_running["A"] == 2


async def test_a_scheduled_message_waits_and_survives_a_restart(
    make_queue, job_store: JobStore
) -> None:
    handler = Recording()
    first = await make_queue(handler)
    scheduled = await first.submit("later", priority=Priority.NORMAL, delay=0.4)
    await first.submit("now", priority=Priority.NORMAL)
    await poll(lambda: handler.order, lambda order: order == ["now"], "the due one priced")
    await first.stop(grace=0)
    # Another queue over the same store: what a restart or another replica is.
    second = await make_queue(handler)
    done = await final(second, scheduled.message.id)
    assert done.status is MessageStatus.COMPLETED
    assert done.scheduled_for is not None and done.started_at is not None
    assert done.started_at >= done.scheduled_for
