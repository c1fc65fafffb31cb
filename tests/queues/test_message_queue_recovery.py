"""The message queue across a restart: what it committed comes back, and a
failed commit leaves nothing half-done."""

import asyncio

import pytest
from support.store_doubles import ScriptedStore

from queues.backoff import Backoff
from queues.errors import InvalidStateError, RequestConflictError
from queues.message import MessageStatus, Outcome, Priority, ReviewDecision
from queues.message_queue import MessageQueue
from queues.records import RecordError
from queues.storage import MemoryStore, Put, StoreError


class Recorder:
    """A handler that records what it processed and can be held or made to fail."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.failing: set[str] = set()
        self.review: set[str] = set()

    async def __call__(self, payload: str) -> Outcome[str]:
        await self.hold.wait()
        if payload in self.failing:
            raise RuntimeError(f"no {payload}")
        self.done.append(payload)
        return Outcome(f"priced {payload}", "check" if payload in self.review else "")


def queue_over(store: MemoryStore, handler: Recorder, **options: object) -> MessageQueue:
    settings = {"workers": 1, "backoff": Backoff(base=3600, cap=3600, jitter=0)}
    return MessageQueue(handler, store=store, **{**settings, **options})  # type: ignore[arg-type]


async def final(queue: MessageQueue, message_id: str):
    async for state in queue.watch(message_id):
        last = state
    return last


async def test_pending_messages_come_back_in_priority_then_fifo_order():
    store, first = MemoryStore(), Recorder()
    first.hold.clear()
    before = queue_over(store, first)
    await before.start()
    names = [
        ("n1", Priority.NORMAL),
        ("l1", Priority.LOW),
        ("u1", Priority.URGENT),
        ("n2", Priority.NORMAL),
        ("h1", Priority.HIGH),
        ("u2", Priority.URGENT),
    ]
    ids = [(await before.submit(n, priority=p)).message.id for n, p in names]
    # The worker took n1 (it was first); the crash hands it back as PENDING.
    await before.stop(grace=0)

    second = Recorder()
    after = queue_over(store, second)
    await after.start()
    for message_id in ids:
        assert (await final(after, message_id)).status is MessageStatus.COMPLETED
    assert second.done == ["u1", "u2", "h1", "n1", "n2", "l1"]
    assert after.stats().completed == 6
    await after.stop()


async def test_retries_dead_letters_reviews_and_stats_come_back():
    now = [1000.0]
    store, handler = MemoryStore(), Recorder()
    handler.failing = {"flaky", "dead"}
    handler.review = {"held"}
    before = queue_over(store, handler, clock=lambda: now[0])
    await before.start()
    flaky = (await before.submit("flaky", priority=Priority.NORMAL, max_retries=2)).message
    dead = (await before.submit("dead", priority=Priority.NORMAL, max_retries=0)).message
    held = (await before.submit("held", priority=Priority.HIGH)).message
    done = (await before.submit("done", priority=Priority.LOW, request_id="r-1")).message
    assert (await final(before, dead.id)).dead_lettered
    assert (await final(before, done.id)).status is MessageStatus.COMPLETED
    waiting = before.get(flaky.id)
    assert (waiting.status, waiting.retry_count) == (MessageStatus.PENDING, 1)
    assert before.get(held.id).status is MessageStatus.AWAITING_REVIEW
    stats_before = before.stats()
    await before.stop()

    handler.failing = set()
    after = queue_over(store, handler, clock=lambda: now[0])
    await after.start()
    assert after.stats() == stats_before
    back = after.get(flaky.id)
    assert (back.status, back.retry_count, back.next_attempt_at) == (
        MessageStatus.PENDING,
        1,
        waiting.next_attempt_at,
    )
    assert after.get(dead.id).error_message == "RuntimeError: no dead"
    assert after.get(held.id).result == "priced held"
    reviewed = await after.review(held.id, ReviewDecision.APPROVE, "ann")
    assert reviewed.status is MessageStatus.COMPLETED
    redriven = await after.redrive(dead.id)
    assert (await final(after, redriven.id)).status is MessageStatus.COMPLETED
    # The request id still answers with its first message, and refuses another.
    repeat = await after.submit("done", priority=Priority.LOW, request_id="r-1")
    assert (repeat.message.id, repeat.duplicate) == (done.id, True)
    with pytest.raises(RequestConflictError):
        await after.submit("other", priority=Priority.LOW, request_id="r-1")
    # New messages go after the recovered ones.
    later = (await after.submit("later", priority=Priority.LOW)).message
    assert later.seq > done.seq
    await after.stop()


async def test_a_failed_commit_queues_nothing_and_changes_nothing():
    store, handler = ScriptedStore(), Recorder()
    handler.hold.clear()
    queue = queue_over(store, handler, max_size=2)
    await queue.start()
    kept = (await queue.submit("kept", priority=Priority.NORMAL)).message
    store.failing = True
    for _ in range(3):
        with pytest.raises(StoreError, match="disk full"):
            await queue.submit("lost", priority=Priority.NORMAL, request_id="r")
    with pytest.raises(StoreError):
        await queue.cancel(kept.id)
    assert queue.get(kept.id).status is MessageStatus.PROCESSING
    stats = queue.stats()
    assert (stats.pending, stats.processing, stats.cancelled) == (0, 1, 0)
    store.failing = False
    # Nothing was reserved by the failed submissions: there is room for one more.
    again = await queue.submit("lost", priority=Priority.NORMAL, request_id="r")
    assert not again.duplicate
    handler.hold.set()
    assert (await final(queue, again.message.id)).status is MessageStatus.COMPLETED
    await queue.stop()


async def test_a_result_is_written_once():
    store, handler = ScriptedStore(), Recorder()
    queue = queue_over(store, handler)
    await queue.start()
    message = (await queue.submit("x", priority=Priority.NORMAL)).message
    await final(queue, message.id)
    await queue.stop()
    statuses = [p["status"] for p in store.puts() if p["id"] == message.id]
    assert statuses == ["pending", "completed"]


async def test_a_worker_takes_the_next_message_while_the_last_result_is_written():
    store, handler = ScriptedStore(), Recorder()
    handler.hold.clear()
    queue = queue_over(store, handler, workers=1)
    await queue.start()
    first = (await queue.submit("first", priority=Priority.NORMAL)).message
    held = store.gate = asyncio.Event()
    store.entered.clear()
    handler.hold.set()
    await store.entered.wait()  # first's result is being written, and held
    store.gate = None
    second = (await queue.submit("second", priority=Priority.NORMAL)).message

    # The only worker did not wait for first's result to be durable...
    assert (await final(queue, second.id)).status is MessageStatus.COMPLETED
    # ...and first shows its result only once it is.
    assert queue.get(first.id).status is MessageStatus.PROCESSING
    assert queue.stats().processing == 1
    # Scheduled before the store's commit wakes: it waits for first's turn.
    cancelling = asyncio.create_task(queue.cancel(first.id))
    held.set()
    with pytest.raises(InvalidStateError):
        await cancelling
    assert queue.get(first.id).status is MessageStatus.COMPLETED
    await queue.stop()
    statuses = [p["status"] for p in store.puts() if p["id"] == first.id]
    assert statuses == ["pending", "completed"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda record: record.pop("review"), "is broken: field 'review' is missing"),
        (
            lambda record: record.update(status="lost"),
            "is broken: field 'status' must be one of 'pending', ",
        ),
        (lambda record: record.update(version=2), "has version 2; this program reads 1 to 1"),
    ],
)
async def test_a_record_that_cannot_be_read_is_refused_naming_it(damage, reason):
    store = MemoryStore()
    first = queue_over(store, Recorder())
    await first.start()
    message = (await first.submit("x", priority=Priority.NORMAL)).message
    await first.stop()
    [(key, record)] = await store.load("messages")
    damage(record)
    await store.commit([Put("messages", key, record)])

    with pytest.raises(RecordError) as refused:
        await queue_over(store, Recorder()).start()
    assert str(refused.value).startswith(
        f"cannot read store memory store: record '{key}' of collection 'messages' {reason}"
    )
    assert (refused.value.collection, refused.value.key) == ("messages", f"{message.seq:016d}")


async def test_a_record_written_before_versions_reads_as_version_one():
    store = MemoryStore()
    first = queue_over(store, Recorder())
    await first.start()
    message = (await first.submit("x", priority=Priority.NORMAL)).message
    await first.stop()
    [(key, record)] = await store.load("messages")
    assert record.pop("version") == 1
    await store.commit([Put("messages", key, record)])

    again = queue_over(store, Recorder())
    await again.start()
    assert (await final(again, message.id)).status is MessageStatus.COMPLETED
    await again.stop()
