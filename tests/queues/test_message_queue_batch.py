"""MessageQueue.submit_many: a batch is queued whole in one store commit, or not at all."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from support.polling import final_state
from support.store_doubles import ScriptedStore

from queues.errors import ClosedError, QueueFullError, RequestConflictError
from queues.message import MessageStatus, Outcome, Priority
from queues.message_queue import BatchRequestConflictError, MessageQueue, NewMessage
from queues.storage import StoreError


class Held:
    """A handler that prices nothing until released, recording what it priced."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.priced: list[str] = []

    async def __call__(self, payload: str) -> Outcome[str]:
        await self.release.wait()
        self.priced.append(payload)
        return Outcome(f"priced {payload}")


@pytest.fixture
def store() -> ScriptedStore:
    return ScriptedStore()


@pytest.fixture
def handler() -> Held:
    return Held()


@pytest.fixture
async def queue(handler: Held, store: ScriptedStore) -> AsyncIterator[MessageQueue[str, str]]:
    q = MessageQueue(handler, workers=1, max_size=6, store=store)
    await q.start()
    yield q
    await q.stop(grace=0)


def normal(payload: str, request_id: str = "") -> NewMessage[str]:
    return NewMessage(payload, Priority.NORMAL, request_id)


def queued(queue: MessageQueue[str, str]) -> list[str]:
    return [m.payload for m in queue.list_messages(limit=100)[0]]


async def test_a_batch_is_one_commit_answered_in_order(queue, store, handler):
    items = [
        NewMessage("low", Priority.LOW),
        normal("first"),
        NewMessage("high", Priority.HIGH, max_retries=0, attempt_timeout=9.0),
        normal("second"),
    ]
    answers = await queue.submit_many(items)
    assert [a.message.payload for a in answers] == ["low", "first", "high", "second"]
    assert [a.position for a in answers] == [0, 0, 0, 2]
    assert (answers[2].message.max_retries, answers[2].message.attempt_timeout) == (0, 9.0)
    assert len(store.written) == 1 and len(store.written[0]) == 4
    assert queued(queue) == ["low", "first", "high", "second"]
    handler.release.set()
    await final_state(queue, answers[0].message.id)
    assert handler.priced == ["high", "first", "second", "low"]


async def test_repeats_answer_their_first_message_and_take_no_room(queue):
    first = await queue.submit("once", priority=Priority.NORMAL, request_id="r1")
    await queue.submit_many([normal(f"n{i}") for i in range(5)])
    answers = await queue.submit_many([normal("once", "r1")])
    assert answers[0].duplicate and answers[0].message.id == first.message.id
    with pytest.raises(QueueFullError):
        await queue.submit_many([normal("once", "r1"), normal("new")])


async def test_a_batch_without_room_for_every_item_queues_none_of_them(queue):
    await queue.submit_many([normal(f"n{i}") for i in range(4)])
    with pytest.raises(QueueFullError) as full:
        await queue.submit_many([normal("a"), normal("b"), normal("c")])
    assert full.value.retry_after > 0
    assert queued(queue) == ["n0", "n1", "n2", "n3"]
    await queue.submit_many([normal("a"), normal("b")])
    assert len(queued(queue)) == 6


async def test_a_conflicting_request_id_refuses_the_batch_naming_the_item(queue):
    await queue.submit("once", priority=Priority.NORMAL, request_id="r1")
    with pytest.raises(BatchRequestConflictError) as conflict:
        await queue.submit_many([normal("new", "r2"), normal("changed", "r1")])
    assert isinstance(conflict.value, RequestConflictError)
    assert (conflict.value.request_id, conflict.value.index) == ("r1", 1)
    assert str(conflict.value).startswith("item 1: ")
    assert queued(queue) == ["once"]
    # Nothing of the refused batch was kept, its request_ids included.
    assert not (await queue.submit_many([normal("other", "r2")]))[0].duplicate


async def test_two_items_with_one_request_id_are_refused(queue):
    with pytest.raises(ValueError, match="item 2"):
        await queue.submit_many([normal("a", "same"), normal("b"), normal("c", "same")])
    assert queued(queue) == []


async def test_a_failed_commit_queues_nothing_and_forgets_the_request_ids(queue, store):
    store.failing = True
    with pytest.raises(StoreError):
        await queue.submit_many([normal("a", "r1"), normal("b")])
    store.failing = False
    assert queued(queue) == []
    answers = await queue.submit_many([normal("a", "r1")] + [normal(f"n{i}") for i in range(5)])
    assert not answers[0].duplicate and len(queued(queue)) == 6


async def test_a_batch_is_refused_once_the_queue_is_stopped(queue):
    await queue.stop(grace=0)
    with pytest.raises(ClosedError):
        await queue.submit_many([normal("late")])


async def test_request_ids_of_a_batch_survive_a_restart(handler, store):
    before = MessageQueue(handler, workers=1, store=store)
    await before.start()
    first = await before.submit_many([normal("a", "r1"), normal("b", "r2")])
    await before.stop(grace=0)
    after = MessageQueue(handler, workers=1, store=store)
    await after.start()
    again = await after.submit_many([normal("b", "r2"), normal("a", "r1")])
    await after.stop(grace=0)
    assert [a.message.id for a in again] == [first[1].message.id, first[0].message.id]
    assert all(a.duplicate for a in again)
    assert {m.status for m in after.list_messages()[0]} == {MessageStatus.PENDING}
