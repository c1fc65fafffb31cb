"""Order events as entries of the durable core's logs (queues/core/log_store.py).

An order's events are one log of space EVENTS, named by the order's id: the
entry's seq is the event's sequence and its created_at the event's. Each
proposal's event is appended under the key proposal_key(proposal_id), so that
its pricing, its withdrawal and a retry after a crash append it once between
them; the completion under COMPLETED_KEY, closing the log.
"""

from typing import Any

from queues.core.log_store import LogEntry
from queues.order_events import OrderEvent, OrderEventKind
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.codecs import ProtoCodec

#: The space of the orders' event logs.
EVENTS = "order-events"
#: The key of an order's ORDER_COMPLETED entry; no proposal key can equal it.
COMPLETED_KEY = "completed"

_QUOTES = ProtoCodec(quote_pb.QueueMessage)


def proposal_key(proposal_id: str) -> str:
    return f"proposal:{proposal_id}"


def proposal_body(
    proposal_id: str, quote: quote_pb.QueueMessage | None, error: str
) -> dict[str, Any]:
    """A proposal's event: New with its quote, or Failed with why."""
    if quote is not None:
        kind, text = OrderEventKind.PROPOSAL_NEW, f"{proposal_id}/New"
    else:
        kind, text = OrderEventKind.PROPOSAL_FAILED, f"{proposal_id}/Failed"
    return {
        "kind": kind.value,
        "proposal_id": proposal_id,
        "text": text,
        "quote": None if quote is None else _QUOTES.encode(quote),
        "error": error,
    }


def completed_body(order_req_id: str) -> dict[str, Any]:
    return {
        "kind": OrderEventKind.ORDER_COMPLETED.value,
        "proposal_id": "",
        "text": f"{order_req_id}/Completed",
        "quote": None,
        "error": "",
    }


def event_of(entry: LogEntry) -> OrderEvent[quote_pb.QueueMessage]:
    body = entry.body
    quote = body["quote"]
    return OrderEvent(
        order_req_id=entry.name,
        sequence=entry.seq,
        kind=OrderEventKind(body["kind"]),
        proposal_id=body["proposal_id"],
        text=body["text"],
        created_at=entry.created_at,
        data=None if quote is None else _QUOTES.decode(quote),
        error=body["error"],
    )
