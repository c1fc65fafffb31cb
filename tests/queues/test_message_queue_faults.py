"""The message queue when something under it fails: a codec that raises, a
store that stops recording, and commits that land out of creation order."""

import asyncio
import logging
from typing import Any

import pytest
from support.polling import poll
from support.scripted import Scripted
from support.store_doubles import ScriptedStore, cap_pages

from queues.backoff import Backoff
from queues.codec import JsonCodec
from queues.message import Message, MessageStatus, Outcome, Priority
from queues.message_queue import Handler, MessageQueue
from queues.storage import Store, StoreError
from queues.storage_sqlite import SqliteStore

FAST = Backoff(base=0.001, cap=0.002, jitter=0.0)


class Gated(Scripted):
    """A handler whose attempts wait for `go`, recording what they started."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def __call__(self, payload: str) -> Outcome[str]:
        await self.play(payload)
        return Outcome(f"priced {payload}")

    async def hold(self, name: str) -> None:
        await self.go.wait()


class RefusingCodec(JsonCodec):
    """Refuses to encode the values it is told to."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)

    def encode(self, value: Any) -> Any:
        if value in self.refused:
            raise TypeError(f"cannot encode {value!r}")
        return value


async def final(queue: MessageQueue[str, str], message_id: str) -> Message[str, str]:
    async for state in queue.watch(message_id):
        last = state
    return last


async def test_listing_pages_every_message_when_commits_land_out_of_creation_order():
    store, handler = ScriptedStore(), Gated()
    queue: MessageQueue[str, str] = MessageQueue(handler, workers=1, store=store)
    await queue.start()
    store.gate = asyncio.Event()
    queued = asyncio.create_task(queue.submit("queued", priority=Priority.NORMAL))
    await store.entered.wait()  # seq 1 is taken; its commit is held
    inline = asyncio.create_task(queue.run_inline("inline", priority=Priority.NORMAL))
    await handler.wait_started("inline")  # seq 2 is registered at once
    store.gate.set()
    store.gate = None
    first = (await queued).message

    seen: list[int] = []
    cursor = 0
    while True:
        page, next_cursor = queue.list_messages(after_seq=cursor, limit=1)
        seen += [m.seq for m in page]
        if next_cursor is None:
            break
        cursor = next_cursor
    assert seen == [first.seq, first.seq + 1]
    handler.go.set()
    await inline
    await queue.stop()


async def test_a_result_codec_that_raises_fails_the_attempt_and_keeps_the_worker():
    handler = Gated()
    handler.go.set()
    queue: MessageQueue[str, str] = MessageQueue(
        handler,
        workers=1,
        max_retries=1,
        backoff=FAST,
        store=ScriptedStore(),
        result_codec=RefusingCodec("priced bad"),
    )
    await queue.start()
    bad = (await queue.submit("bad", priority=Priority.NORMAL)).message
    good = (await queue.submit("good", priority=Priority.NORMAL)).message

    ended = await final(queue, bad.id)
    assert (ended.status, ended.dead_lettered, ended.retry_count) == (
        MessageStatus.FAILED,
        True,
        2,
    )
    assert ended.error_message == (
        "cannot record the outcome: TypeError: cannot encode 'priced bad'"
    )
    # The only worker lived on to take the next message.
    assert (await final(queue, good.id)).status is MessageStatus.COMPLETED
    await queue.stop()  # would hang with the message PROCESSING for ever


async def test_an_inline_run_whose_result_cannot_be_encoded_raises_and_keeps_nothing():
    handler = Gated()
    handler.go.set()
    queue: MessageQueue[str, str] = MessageQueue(
        handler, workers=1, result_codec=RefusingCodec("priced bad")
    )
    async with queue:
        with pytest.raises(TypeError, match="cannot encode"):
            await queue.run_inline("bad", priority=Priority.NORMAL)
        assert queue.list_messages() == ([], None)
        assert queue.stats().processing == 0


async def test_a_payload_the_codec_refuses_reserves_no_room():
    handler = Gated()
    queue: MessageQueue[str, str] = MessageQueue(
        handler, max_size=1, payload_codec=RefusingCodec("bad")
    )
    async with queue:
        for _ in range(3):
            with pytest.raises(TypeError, match="cannot encode 'bad'"):
                await queue.submit("bad", priority=Priority.NORMAL)
        accepted = await queue.submit("good", priority=Priority.NORMAL)
        assert accepted.message.status is MessageStatus.PENDING
        handler.go.set()


async def test_while_the_store_fails_messages_wait_and_one_probe_per_interval_runs(caplog):
    caplog.set_level(logging.INFO)
    store, handler = ScriptedStore(), Gated()
    queue, ids = await queue_holding(handler, store, 20)
    store.failing = True
    handler.go.set()
    await until_probed(caplog, 3)
    with pytest.raises(StoreError, match="disk full"):
        await queue.submit("refused", priority=Priority.NORMAL)

    # One line when the outage began, not one per message, then one per probe,
    # and each probe ran one attempt: the rest waited without running.
    assert len(lines(caplog, logging.ERROR)) == 1
    probes = len(lines(caplog, logging.WARNING))
    assert len(handler.started) - len(ids) in (probes, probes + 1)
    stats = queue.stats()
    assert (stats.pending, stats.processing) in ((20, 0), (19, 1))

    store.failing = False
    for message_id in ids:
        assert (await final(queue, message_id)).status is MessageStatus.COMPLETED
    assert "the store records again" in caplog.text
    await queue.stop()


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and r.name.startswith("queues.")]


async def queue_holding(
    handler: Handler[str, str], store: Store, count: int
) -> tuple[MessageQueue[str, str], list[str]]:
    """A started queue that probes a failing store every few ms, holding count messages."""
    queue: MessageQueue[str, str] = MessageQueue(
        handler,
        workers=2,
        store=store,
        store_backoff=Backoff(base=0.005, cap=0.02, jitter=0.0),
    )
    await queue.start()
    submitted = [await queue.submit(f"m{n}", priority=Priority.NORMAL) for n in range(count)]
    return queue, [s.message.id for s in submitted]


async def until_probed(caplog: pytest.LogCaptureFixture, probes: int) -> None:
    """Wait until that many probes of a failing store have failed."""
    await poll(lambda: len(lines(caplog, logging.WARNING)), lambda n: n >= probes, "the probes")


async def test_a_full_disk_fails_submissions_and_once_freed_every_message_drains(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    go = asyncio.Event()

    async def price_at_length(payload: str) -> Outcome[str]:
        await go.wait()
        return Outcome("x" * 5000)  # a result that needs pages of its own

    store = SqliteStore(tmp_path / "q.db")
    await store.open()
    queue, ids = await queue_holding(price_at_length, store, 10)
    await cap_pages(store)
    go.set()
    await until_probed(caplog, 1)
    with pytest.raises(StoreError, match="database or disk is full"):
        await queue.submit("x" * 20_000, priority=Priority.NORMAL)

    await cap_pages(store, 1_000_000)  # space is freed; nothing is restarted
    for message_id in ids:
        assert (await final(queue, message_id)).status is MessageStatus.COMPLETED
    assert len(lines(caplog, logging.ERROR)) == 1
    await queue.stop()
    await store.close()


async def test_an_attempt_whose_failure_cannot_be_recorded_either_runs_again_later():
    handler = Gated()
    handler.go.set()
    payloads = RefusingCodec()
    queue: MessageQueue[str, str] = MessageQueue(
        handler,
        workers=1,
        backoff=FAST,
        store=ScriptedStore(),
        payload_codec=payloads,
        result_codec=RefusingCodec("priced flaky"),
    )
    await queue.start()
    message = (await queue.submit("flaky", priority=Priority.NORMAL)).message
    payloads.refused.add("flaky")  # from now on no record of it can be made
    await handler.wait_started("flaky")
    await handler.wait_started_count(3)  # it ran again, and again: the worker lives
    payloads.refused.clear()
    ended = await final(queue, message.id)
    assert ended.status is MessageStatus.FAILED
    assert ended.error_message.startswith("cannot record the outcome: TypeError")
    await queue.stop()
