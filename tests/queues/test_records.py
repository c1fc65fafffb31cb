"""Records of an earlier release's journal, as each service's import reads
them at start: one that cannot be read refuses the start with a RecordError
naming the store, the collection and the key, and one written before records
had versions reads as version 1."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.stored_records import (
    QUOTES,
    TASKS,
    a_task,
    an_event,
    read_messages,
    read_orders,
    read_tasks,
)

from queues.order_events import event_from_record, event_put
from queues.records import RecordError
from queues.storage import MemoryStore, Put, Store
from queues.task_records import TASK_VERSION


@pytest.mark.parametrize(
    ("start", "collection", "key"),
    [
        (read_messages, "messages", "0000000000000001"),
        (read_tasks, "tasks", "t1"),
        (read_orders, "order_events", '["o1", "000000000001"]'),
        (read_orders, "order_tombstones", "o1"),
        (read_orders, "proposals", '["o1", "p1"]'),
        (read_orders, "proposal_requests", "r1"),
    ],
)
@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"seq": 1}, "is broken: field "),
        ({"version": 99, "order_req_id": "o1"}, "has version 99; this program reads 1 to "),
    ],
)
async def test_a_record_that_cannot_be_read_refuses_the_start_naming_it(
    start: Callable[[Store], Awaitable[object]],
    collection: str,
    key: str,
    record: dict[str, Any],
    reason: str,
) -> None:
    store = MemoryStore()
    await store.commit([Put(collection, key, record)])
    with pytest.raises(RecordError) as refused:
        await start(store)
    assert str(refused.value).startswith(
        f"cannot read store memory store: record {key!r} of collection {collection!r} {reason}"
    )
    assert (refused.value.store, refused.value.collection, refused.value.key) == (
        "memory store",
        collection,
        key,
    )


def test_event_and_task_records_without_a_version_read_as_version_one() -> None:
    event = an_event()
    written = event_put(event, QUOTES).value
    assert written.pop("version") == 1
    assert event_from_record(written, QUOTES) == event

    record = a_task()
    put = TASKS.put(record, 3, "follow-order")
    assert put.value.pop("version") == TASK_VERSION
    stored = TASKS.decode("t1", put.value)
    assert (stored.record, stored.seq, stored.func_name) == (record, 3, "follow-order")
