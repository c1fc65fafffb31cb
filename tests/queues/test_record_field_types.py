"""A record of an earlier release's journal whose field holds a value of the
wrong type or out of range refuses the service's import at start with a
RecordError naming the field, what it must be and what it holds, instead of
importing a message, task or event that breaks later (a string sequence
number sorts wrong; NaN compares false to every time)."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support.stored_records import (
    a_message,
    a_task_record,
    an_event_record,
    read_messages,
    read_orders,
    read_tasks,
)

from processor_svc.completion_records import completion_put
from processor_svc.proposal_records import Request, proposal_put, request_put
from processor_svc.request_id_key import KEYS, REQUEST_ID_KEY
from queues.order_tombstones import tombstone_put
from queues.records import RecordError
from queues.storage import MemoryStore, Put, Store


def with_field(put: Put, name: str, value: Any) -> Put:
    return Put(put.collection, put.key, {**put.value, name: value})


def a_tombstone() -> Put:
    return tombstone_put("o1", 1.0)


def a_proposal() -> Put:
    return proposal_put("o1", "p1", "h")


def a_request() -> Put:
    return request_put("r1", Request("o1", "p1", "f"))


def a_completion() -> Put:
    return completion_put("o1", 1.0)


MESSAGE, TASK = (read_messages, a_message), (read_tasks, a_task_record)
EVENT, TOMBSTONE = (read_orders, an_event_record), (read_orders, a_tombstone)
PROPOSAL, REQUEST, COMPLETION = (
    (read_orders, a_proposal),
    (read_orders, a_request),
    (read_orders, a_completion),
)
KINDS = [MESSAGE, TASK, EVENT, TOMBSTONE, PROPOSAL, REQUEST, COMPLETION]
#: (reader and record, field, its wrong value, what the error says of it)
CASES = [
    (MESSAGE, "seq", "1", "must be an integer of at least 1, not a string '1'"),
    (MESSAGE, "created_at", "yesterday", "must be a number, not a string 'yesterday'"),
    (MESSAGE, "max_retries", True, "must be an integer of at least 0, not a boolean True"),
    (MESSAGE, "dead_lettered", 0, "must be a boolean, not an integer 0"),
    (MESSAGE, "status", "LOST", "must be one of 'pending', "),
    (MESSAGE, "request", ["fp", "3", 30.0], "'request[1]' must be an integer"),
    (MESSAGE, "review", [1, 2], "must be an array of 4 items, not an array [1, 2]"),
    (MESSAGE, "error_message", None, "must be a string, not null"),
    (TASK, "queue_position", -1, "must be an integer of at least 0, not an integer -1"),
    (TASK, "kwargs", ["a"], "must be an object, not an array ['a']"),
    (TASK, "priority", 7, "must be one of 1, 2, 3, not an integer 7"),
    (EVENT, "sequence", 1.5, "must be an integer of at least 1, not a number 1.5"),
    (EVENT, "kind", None, "must be one of "),
    (TOMBSTONE, "removed_at", "yesterday", "must be a number, not a string 'yesterday'"),
    (PROPOSAL, "handle", 5, "must be a string, not an integer 5"),
    (REQUEST, "fingerprint", {}, "must be a string, not an object {}"),
    (COMPLETION, "requested_at", True, "must be a number, not a boolean True"),
]


@pytest.mark.parametrize(
    ("read", "put"), [pytest.param(*kind, id=kind[1].__name__.split("_", 1)[1]) for kind in KINDS]
)
async def test_each_sample_record_is_read(
    read: Callable[[Store], Awaitable[int]], put: Callable[[], Put]
) -> None:
    """So that a refusal below is the wrong field's doing, not the sample's."""
    store = MemoryStore()
    await store.commit([put()])
    assert await read(store) == 1


@pytest.mark.parametrize(
    ("read", "put", "name", "value", "reason"),
    [
        pytest.param(*kind, name, value, reason, id=f"{kind[1].__name__.split('_', 1)[1]}-{name}")
        for kind, name, value, reason in CASES
    ],
)
async def test_a_field_of_the_wrong_type_refuses_the_start_naming_the_field(
    read: Callable[[Store], Awaitable[object]],
    put: Callable[[], Put],
    name: str,
    value: Any,
    reason: str,
) -> None:
    good = put()
    store = MemoryStore()
    await store.commit([with_field(good, name, value)])
    with pytest.raises(RecordError) as refused:
        await read(store)
    field = "" if reason.startswith("'") else f"'{name}' "
    assert str(refused.value).startswith(
        f"cannot read store memory store: record {good.key!r} of collection "
        f"{good.collection!r} is broken: field {field}{reason}"
    )


async def test_a_field_that_is_missing_is_named() -> None:
    good = a_message()
    record = dict(good.value)
    del record["review"]
    store = MemoryStore()
    await store.commit([Put(good.collection, good.key, record)])
    with pytest.raises(RecordError, match=r"is broken: field 'review' is missing$"):
        await read_messages(store)


async def test_a_record_that_is_not_an_object_is_named() -> None:
    store = MemoryStore()
    await store.commit([Put("order_tombstones", "o1", [1, 2])])
    with pytest.raises(
        RecordError, match=r"is broken: the record is an array \[1, 2\], not an object$"
    ):
        await read_orders(store)


async def test_a_secret_of_the_wrong_type_refuses_the_processor_key() -> None:
    store = MemoryStore()
    await store.commit([Put(KEYS, REQUEST_ID_KEY, {"version": 1, "secret": 12})])
    with pytest.raises(RecordError, match=r"field 'secret' must be a string, not an integer 12$"):
        await read_orders(store)
