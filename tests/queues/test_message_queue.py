"""The message queue as a plain asyncio library: ordering, retries, timeouts,
dead letters, cancellation, bounds, review, retention and exact stats."""

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest
from support.polling import final_state
from support.scripted import Scripted

from queues.backoff import Backoff
from queues.errors import (
    ClosedError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.message import Message, MessageStatus, Outcome, Priority, ReviewDecision
from queues.message_queue import MessageQueue

FAST_BACKOFF = Backoff(base=0.001, cap=0.002, jitter=0.0)


class Script(Scripted):
    """A handler whose behaviour per payload the test controls, and what it holds for review."""

    def __init__(self) -> None:
        super().__init__()
        self.reviews: dict[str, str] = {}

    async def __call__(self, payload: str) -> Outcome[str]:
        await self.play(payload)
        return Outcome(f"priced {payload}", self.reviews.get(payload, ""))


async def reach(queue: MessageQueue[str, str], message_id: str, status: MessageStatus) -> None:
    async for state in queue.watch(message_id):
        if state.status is status:
            return
    raise AssertionError(f"{message_id} ended without reaching {status}")


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
async def queue(script: Script) -> AsyncIterator[MessageQueue[str, str]]:
    async with MessageQueue(script, workers=1, backoff=FAST_BACKOFF) as q:
        yield q


async def test_high_submitted_after_fifty_normals_goes_first(script, queue):
    script.gate("blocker")
    blocker = (await queue.submit("blocker", priority=Priority.NORMAL)).message
    await script.wait_started("blocker")
    normals = [(await queue.submit(f"n{i}", priority=Priority.NORMAL)).message for i in range(50)]
    high = await queue.submit("high", priority=Priority.HIGH)
    assert high.position == 0
    script.gates["blocker"].set()
    for message in [blocker, *normals]:
        await final_state(queue, message.id)
    assert script.finished[:2] == ["blocker", "high"]
    assert script.finished[2:] == [f"n{i}" for i in range(50)]


async def test_priorities_then_fifo_within_each(script, queue):
    script.gate("blocker")
    await queue.submit("blocker", priority=Priority.URGENT)
    await script.wait_started("blocker")
    order = [
        ("l1", Priority.LOW),
        ("n1", Priority.NORMAL),
        ("u1", Priority.URGENT),
        ("h1", Priority.HIGH),
        ("n2", Priority.NORMAL),
        ("l2", Priority.LOW),
        ("h2", Priority.HIGH),
        ("u2", Priority.URGENT),
    ]
    ids = [(await queue.submit(name, priority=p)).message.id for name, p in order]
    script.gates["blocker"].set()
    for message_id in ids:
        await final_state(queue, message_id)
    assert script.finished[1:] == ["u1", "u2", "h1", "h2", "n1", "n2", "l1", "l2"]


async def test_failures_retry_with_backoff_then_dead_letter(script, queue):
    script.failures["bad"] = 99
    message = (await queue.submit("bad", priority=Priority.NORMAL, max_retries=2)).message
    states = [state async for state in queue.watch(message.id)]
    backoffs = [s for s in states if s.status is MessageStatus.PENDING and s.next_attempt_at]
    assert [s.retry_count for s in backoffs] == [1, 2]
    final = states[-1]
    assert final.status is MessageStatus.FAILED
    assert final.dead_lettered
    assert final.retry_count == 3
    assert final.error_message == "RuntimeError: boom bad"
    assert script.started.count("bad") == 3
    assert queue.stats().dead_letters == 1


async def test_a_handler_failing_before_it_awaits_fails_the_attempt_not_the_worker():
    # A plain function returning an awaitable, which checks its payload first.
    def checked_handler(payload: str) -> Awaitable[Outcome[str]]:
        raise ValueError(f"cannot price {payload}")

    async with MessageQueue(checked_handler, workers=1, max_retries=0) as queue:
        first = (await queue.submit("first", priority=Priority.NORMAL)).message
        second = (await queue.submit("second", priority=Priority.NORMAL)).message
        for message in (first, second):
            final = await final_state(queue, message.id)
            assert final.status is MessageStatus.FAILED
            assert final.error_message == f"ValueError: cannot price {message.payload}"


async def test_a_message_waiting_out_its_backoff_holds_no_worker(script):
    slow = Backoff(base=3600.0, cap=3600.0, jitter=0.0)
    async with MessageQueue(script, workers=1, backoff=slow) as queue:
        script.failures["flaky"] = 1
        flaky = (await queue.submit("flaky", priority=Priority.URGENT)).message
        other = (await queue.submit("other", priority=Priority.LOW)).message
        assert (await final_state(queue, other.id)).status is MessageStatus.COMPLETED
        waiting = queue.get(flaky.id)
        assert waiting.status is MessageStatus.PENDING
        assert waiting.next_attempt_at is not None
        assert waiting.next_attempt_at - waiting.created_at >= 3600.0
        assert queue.stats().processing == 0


def test_backoff_is_exponential_capped_and_jittered():
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.5)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert backoff.delay(3, rand=lambda: 1.0) == 2.0
    assert backoff.delay(10_000, rand=lambda: 0.0) == 10.0
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


async def test_a_timeout_counts_as_a_failed_attempt(script, queue):
    script.hang.add("stuck")
    message = (
        await queue.submit("stuck", priority=Priority.NORMAL, max_retries=1, attempt_timeout=0.01)
    ).message
    final = await final_state(queue, message.id)
    assert final.status is MessageStatus.FAILED
    assert final.retry_count == 2
    assert final.error_message == "attempt timed out after 0.01s"
    assert script.cancelled == ["stuck", "stuck"]


async def test_redrive_resets_retries_and_requeues(script, queue):
    script.failures["bad"] = 1
    message = (await queue.submit("bad", priority=Priority.NORMAL, max_retries=0)).message
    assert (await final_state(queue, message.id)).dead_lettered
    redriven = await queue.redrive(message.id)
    assert redriven.status is MessageStatus.PENDING
    assert (redriven.retry_count, redriven.dead_lettered, redriven.error_message) == (0, False, "")
    final = await final_state(queue, message.id)
    assert final.status is MessageStatus.COMPLETED
    assert final.result == "priced bad"
    assert queue.stats().dead_letters == 0
    with pytest.raises(InvalidStateError, match=r"cannot redrive message .* it is completed"):
        await queue.redrive(message.id)


async def test_cancel_pending_processing_and_final(script, queue):
    script.gate("running")
    running = (await queue.submit("running", priority=Priority.NORMAL)).message
    await script.wait_started("running")
    waiting = (await queue.submit("waiting", priority=Priority.NORMAL)).message

    assert (await queue.cancel(waiting.id)).status is MessageStatus.CANCELLED
    cancelled = await queue.cancel(running.id)
    assert cancelled.status is MessageStatus.CANCELLED
    assert (await final_state(queue, running.id)).status is MessageStatus.CANCELLED
    await script.wait_cancelled("running")

    # The worker is free again and the cancelled pending message never ran.
    after = (await queue.submit("after", priority=Priority.NORMAL)).message
    assert (await final_state(queue, after.id)).status is MessageStatus.COMPLETED
    assert "waiting" not in script.started
    with pytest.raises(InvalidStateError, match="it is cancelled"):
        await queue.cancel(running.id)
    stats = queue.stats()
    assert (stats.cancelled, stats.completed, stats.pending, stats.processing) == (2, 1, 0, 0)


async def test_full_queue_refuses_with_a_hint_and_keeps_every_accepted_message(script):
    async with MessageQueue(script, workers=1, max_size=3) as queue:
        script.gate("first")
        accepted = [(await queue.submit("first", priority=Priority.NORMAL)).message]
        await script.wait_started("first")
        accepted += [
            (await queue.submit(f"m{i}", priority=Priority.NORMAL)).message for i in range(2)
        ]
        with pytest.raises(QueueFullError) as refused:
            await queue.submit("extra", priority=Priority.URGENT)
        assert refused.value.retry_after > 0
        assert refused.value.max_size == 3
        script.gates["first"].set()
        finals = [await final_state(queue, m.id) for m in accepted]
        assert [m.status for m in finals] == [MessageStatus.COMPLETED] * 3
        assert "extra" not in script.started


async def test_unknown_ids_are_not_found(queue):
    with pytest.raises(NotFoundError, match="message 'nope' not found"):
        queue.get("nope")
    for change in (queue.cancel, queue.redrive):
        with pytest.raises(NotFoundError, match="message 'nope' not found"):
            await change("nope")
    with pytest.raises(NotFoundError):
        await anext(queue.watch("nope"))


async def test_watch_shows_each_transition_and_ends(script, queue):
    script.gate("x")
    message = (await queue.submit("x", priority=Priority.NORMAL)).message
    stream = queue.watch(message.id)
    first = await anext(stream)
    await script.wait_started("x")
    script.gates["x"].set()
    rest = [state async for state in stream]
    assert [first.status, *(s.status for s in rest)][-2:] == [
        MessageStatus.PROCESSING,
        MessageStatus.COMPLETED,
    ]
    assert rest[-1].result == "priced x"
    # A final message is sent once and the stream ends.
    assert [s.status for s in [s async for s in queue.watch(message.id)]] == [
        MessageStatus.COMPLETED
    ]


async def test_retention_sweep_removes_finished_messages_only(script):
    now = [1000.0]
    async with MessageQueue(script, workers=1, retention=60.0, clock=lambda: now[0]) as queue:
        script.reviews["held"] = "needs a human"
        done = (await queue.submit("done", priority=Priority.NORMAL, request_id="r1")).message
        held = (await queue.submit("held", priority=Priority.NORMAL)).message
        await final_state(queue, done.id)
        await reach(queue, held.id, MessageStatus.AWAITING_REVIEW)
        now[0] += 59.0
        assert (await queue.sweep_expired()) == 0
        now[0] += 1.0
        assert (await queue.sweep_expired()) == 1
        with pytest.raises(NotFoundError):
            queue.get(done.id)
        assert queue.get(held.id).status is MessageStatus.AWAITING_REVIEW
        assert queue.stats().completed == 0
        # The request id expired with its message.
        again = await queue.submit("done", priority=Priority.NORMAL, request_id="r1")
        assert not again.duplicate
        assert again.message.id != done.id


async def test_periodic_sweep_runs_by_itself(script):
    async with MessageQueue(script, workers=1, retention=0.5, sweep_interval=0.01) as queue:
        message = (await queue.submit("x", priority=Priority.NORMAL)).message
        assert (await final_state(queue, message.id)).status is MessageStatus.COMPLETED
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            try:
                queue.get(message.id)
            except NotFoundError:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the periodic sweep never removed the finished message")
        # Removed, not merely hidden from get: the stats no longer count it.
        assert queue.stats().completed == 0


async def test_review_approve_and_reject(script, queue):
    script.reviews.update(a="big coverage", b="many claims")
    a = (await queue.submit("a", priority=Priority.NORMAL)).message
    b = (await queue.submit("b", priority=Priority.NORMAL)).message
    for message in (a, b):
        await reach(queue, message.id, MessageStatus.AWAITING_REVIEW)
    held = queue.get(a.id)
    assert (held.review_reason, held.result) == ("big coverage", "priced a")
    approved = await queue.review(a.id, ReviewDecision.APPROVE, "ann", "fine")
    rejected = await queue.review(b.id, ReviewDecision.REJECT, "bob", "too risky")
    assert approved.status is MessageStatus.COMPLETED
    assert (approved.review.reviewer, approved.review.note) == ("ann", "fine")
    assert rejected.status is MessageStatus.REJECTED
    assert rejected.review.decision is ReviewDecision.REJECT
    with pytest.raises(InvalidStateError, match="cannot review"):
        await queue.review(a.id, ReviewDecision.REJECT, "eve")


async def test_stats_are_exact_after_a_mixed_workload(script):
    async with MessageQueue(script, workers=2, max_size=50, backoff=FAST_BACKOFF) as queue:
        script.gate("run1")
        script.gate("run2")
        script.failures["dead"] = 9
        script.reviews["rev"] = "check"
        ids = {}
        for name, priority in [
            ("run1", Priority.URGENT),
            ("run2", Priority.URGENT),
            ("p-low", Priority.LOW),
            ("p-high", Priority.HIGH),
            ("p-high2", Priority.HIGH),
            ("cancel-me", Priority.NORMAL),
        ]:
            ids[name] = (await queue.submit(name, priority=priority, max_retries=0)).message.id
        await script.wait_started("run1")
        await script.wait_started("run2")
        await queue.cancel(ids["cancel-me"])
        stats = queue.stats()
        assert (stats.pending, stats.processing, stats.cancelled) == (3, 2, 1)
        by_priority = {c.priority: (c.pending, c.processing) for c in stats.by_priority}
        assert by_priority == {
            Priority.LOW: (1, 0),
            Priority.NORMAL: (0, 0),
            Priority.HIGH: (2, 0),
            Priority.URGENT: (0, 2),
        }
        assert stats.oldest_pending == queue.get(ids["p-low"]).created_at
        assert stats.longest_processing_seconds >= 0.0

        script.gates["run1"].set()
        script.gates["run2"].set()
        for name in ("dead", "rev", "ok"):
            ids[name] = (await queue.submit(name, priority=Priority.LOW, max_retries=0)).message.id
        for name in ("run1", "run2", "p-low", "p-high", "p-high2", "dead", "ok"):
            await final_state(queue, ids[name])
        await reach(queue, ids["rev"], MessageStatus.AWAITING_REVIEW)
        stats = queue.stats()
        assert (stats.pending, stats.processing) == (0, 0)
        assert (stats.completed, stats.failed, stats.dead_letters) == (6, 1, 1)
        assert (stats.cancelled, stats.awaiting_review, stats.rejected) == (1, 1, 0)
        assert stats.oldest_pending is None
        assert stats.longest_processing_seconds == 0.0
        assert (stats.max_size, stats.workers) == (50, 2)


async def test_a_repeated_request_id_returns_the_first_message(script, queue):
    answers = await asyncio.gather(
        *(queue.submit("x", priority=Priority.NORMAL, request_id="req-1") for _ in range(101))
    )
    assert len({a.message.id for a in answers}) == 1
    assert [a.duplicate for a in answers].count(False) == 1
    assert queue.stats().pending + queue.stats().processing + queue.stats().completed == 1
    with pytest.raises(RequestConflictError, match="req-1"):
        await queue.submit("y", priority=Priority.NORMAL, request_id="req-1")


async def test_run_inline_processes_without_the_queue(script, queue):
    script.gate("blocker")
    await queue.submit("blocker", priority=Priority.URGENT)
    await script.wait_started("blocker")
    done = await queue.run_inline("inline", priority=Priority.LOW)
    assert done.status is MessageStatus.COMPLETED
    assert done.result == "priced inline"
    script.failures["broken"] = 1
    failed = await queue.run_inline("broken", priority=Priority.LOW)
    assert failed.status is MessageStatus.FAILED
    assert not failed.dead_lettered
    assert failed.error_message == "RuntimeError: boom broken"
    with pytest.raises(InvalidStateError, match="failed but not dead-lettered"):
        await queue.redrive(failed.id)
    script.gates["blocker"].set()


async def test_close_hands_running_attempts_back_and_refuses_new_work(script):
    queue: MessageQueue[str, str] = MessageQueue(script, workers=1)
    await queue.start()
    script.hang.add("long")
    message = (await queue.submit("long", priority=Priority.NORMAL)).message
    waiting = (await queue.submit("next", priority=Priority.NORMAL)).message
    await script.wait_started("long")
    await queue.stop(grace=0)
    assert queue.get(message.id).status is MessageStatus.PENDING
    assert queue.get(message.id).retry_count == 0
    assert queue.get(waiting.id).status is MessageStatus.PENDING
    with pytest.raises(ClosedError):
        await queue.submit("late", priority=Priority.NORMAL)


async def test_list_pages_in_creation_order_with_filters(script):
    async with MessageQueue(script, workers=1, max_size=100) as queue:
        script.gate("blocker")
        await queue.submit("blocker", priority=Priority.NORMAL)
        await script.wait_started("blocker")
        highs = [(await queue.submit(f"h{i}", priority=Priority.HIGH)).message.id for i in range(5)]
        for i in range(3):
            await queue.submit(f"l{i}", priority=Priority.LOW)
        seen: list[str] = []
        cursor = 0
        while True:
            page, next_cursor = queue.list_messages(
                status=MessageStatus.PENDING, priority=Priority.HIGH, after_seq=cursor, limit=2
            )
            seen += [m.id for m in page]
            if next_cursor is None:
                break
            cursor = next_cursor
        assert seen == highs
        everything, end = queue.list_messages(limit=100)
        assert len(everything) == 9
        assert end is None
        script.gates["blocker"].set()


def test_a_message_copy_carries_every_field():
    from dataclasses import fields

    from queues.message import Review

    message: Message[str, str] = Message(
        "id", 7, "payload", Priority.HIGH, MessageStatus.FAILED, 1.0, 5, 9.0, "req", 2.0, 3.0,
        "err", 2, 4.0, "result", "why", Review(ReviewDecision.APPROVE, "ann", "ok", 5.0), True,
    )  # fmt: skip
    defaults = Message("", 0, "", Priority.LOW, MessageStatus.PENDING, 0.0, 0, 0.0)
    # Every field differs from its default, so a field copy() forgot would show.
    assert all(getattr(message, f.name) != getattr(defaults, f.name) for f in fields(Message))
    copied = message.copy()
    assert copied == message and copied is not message
    assert message.copy(retry_count=0).retry_count == 0 and message.retry_count == 2


async def test_a_run_inline_caller_that_goes_away_takes_its_attempt_with_it(script, queue):
    script.hang.add("abandoned")
    running = asyncio.create_task(queue.run_inline("abandoned", priority=Priority.LOW))
    await script.wait_started("abandoned")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert script.cancelled == ["abandoned"]
    # Nothing was promised to the caller, so nothing is kept.
    assert queue.list_messages() == ([], None)


async def test_cancelling_an_inline_run_answers_it_cancelled_and_its_caller_goes_on(script, queue):
    script.hang.add("inline")
    running = asyncio.create_task(queue.run_inline("inline", priority=Priority.LOW))
    await script.wait_started("inline")
    [message], _ = queue.list_messages()
    assert (await queue.cancel(message.id)).status is MessageStatus.CANCELLED
    assert (await running).status is MessageStatus.CANCELLED
    # The caller's task took its cut back: it is not being cancelled.
    assert running.cancelling() == 0
    assert script.cancelled == ["inline"]


async def test_a_worker_whose_attempt_was_cut_goes_on_to_the_next_message(script, queue):
    script.hang.add("slow")
    slow = (await queue.submit("slow", priority=Priority.NORMAL, attempt_timeout=0.01,
                               max_retries=0)).message  # fmt: skip
    after = (await queue.submit("after", priority=Priority.NORMAL)).message
    assert (await final_state(queue, slow.id)).status is MessageStatus.FAILED
    # The only worker was the one cut: it takes the next message as usual.
    assert (await final_state(queue, after.id)).status is MessageStatus.COMPLETED
