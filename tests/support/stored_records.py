"""What tests of stored records share: each service's read of an earlier
release's journal over a given store, as its import at start does, to see a
record read or refused, and sample records of each kind to store."""

from typing import Any

from processor_svc.journal_import import read_journal as read_processor_journal
from queues.codec import JsonCodec
from queues.message import Message, MessageStatus, Priority
from queues.message_records import MessageCodec, RequestFacts
from queues.order_events import OrderEvent, OrderEventKind, event_put
from queues.storage import Put, Store
from queues.task import TaskPriority, TaskRecord, TaskStatus
from queues.task_records import TaskCodec
from quote_svc.journal_import import read_journal as read_quote_journal
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from requestor_svc.journal_import import read_journal as read_requestor_journal
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JobArgsCodec, OrderJob, Placement, ProgressCodec
from service_runtime.codecs import ProtoCodec

#: How the quote journal is read here: JSON payloads and results keep the
#: sample small; the fields checked are the record's, not the codec's.
MESSAGES: MessageCodec[Any, Any] = MessageCodec(JsonCodec(), JsonCodec())
#: How the requestor's import reads a task's kwargs and result.
TASKS: TaskCodec[OrderProgress] = TaskCodec(JobArgsCodec(), ProgressCodec())
#: How the processor's import reads an event's quote.
QUOTES = ProtoCodec(quote_pb.QueueMessage)


async def read_messages(store: Store) -> int:
    """How many messages the quote service's import reads from store."""
    return len(await read_quote_journal(store, MESSAGES))


async def read_tasks(store: Store) -> int:
    """How many tasks the requestor's import reads from store."""
    return len(await read_requestor_journal(store))


async def read_orders(store: Store) -> int:
    """How many records the processor's import reads from store."""
    read = await read_processor_journal(store)
    per_order: list[dict[str, Any]] = [read.events, read.proposals, read.requests]
    return (
        sum(len(each) for kind in per_order for each in kind.values())
        + len(read.completions)
        + len(read.tombstones)
        + (read.key is not None)
    )


def a_message() -> Put:
    message: Message[Any, Any] = Message(
        "m1", 1, "p", Priority.NORMAL, MessageStatus.PENDING, 10.0, 3, 30.0
    )
    return MESSAGES.put(message, RequestFacts("fp", 3, 30.0))


def an_event() -> OrderEvent[quote_pb.QueueMessage]:
    quote = quote_pb.QueueMessage(id="q1", retry_count=1)
    return OrderEvent("o1", 1, OrderEventKind.PROPOSAL_NEW, "p1", "p1/New", 5.0, quote)


def an_event_record() -> Put:
    return event_put(an_event(), QUOTES)


def a_task() -> TaskRecord[OrderProgress]:
    """A queued task t1 of order o1, as the requestor's journal held it."""
    placement = Placement("o1", TaskPriority.MEDIUM, 60.0, None)
    return TaskRecord(
        task_id="t1",
        order_req_id="o1",
        priority=TaskPriority.MEDIUM,
        status=TaskStatus.QUEUED,
        created_at=1.0,
        kwargs={"job": OrderJob(placement, "r1", OrderProgress("o1"))},
    )


def a_task_record() -> Put:
    return TASKS.put(a_task(), 3, "follow-order")
