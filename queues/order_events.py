"""Order events, and how each one is kept as a record of the "order_events" collection.

Every field of an event is in its record, so a log is rebuilt from its records
alone; what the event carries (data) goes through a codec. The records are an
earlier release's journal, read by processor_svc/journal_import.py; the event
itself is what the processor answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from queues.codec import Codec
from queues.records import VERSION, field, version_of
from queues.storage import Put

T = TypeVar("T")

#: The collection holding every order's events.
EVENTS = "order_events"
#: The version (records.py) of the shape event_put writes.
EVENT_VERSION = 1


class OrderEventKind(StrEnum):
    #: A proposal was priced: text "<proposal_id>/New", data holds the quote.
    PROPOSAL_NEW = "proposal_new"
    #: A proposal could not be priced: text "<proposal_id>/Failed", error says why.
    PROPOSAL_FAILED = "proposal_failed"
    #: The order was completed: always the order's last event.
    ORDER_COMPLETED = "order_completed"


@dataclass(frozen=True, slots=True)
class OrderEvent(Generic[T]):
    order_req_id: str
    #: Position in the order's log: 1, 2, 3 … with no gaps.
    sequence: int
    kind: OrderEventKind
    #: The proposal it is about; "" for ORDER_COMPLETED.
    proposal_id: str
    #: The seed's short form, for example "PROP456/New".
    text: str
    #: When it was appended (epoch seconds).
    created_at: float
    #: What the event carries, for example the priced quote of PROPOSAL_NEW.
    data: T | None = None
    #: Why the proposal failed, for PROPOSAL_FAILED; "" otherwise.
    error: str = ""


def event_key(order_req_id: str, sequence: int) -> str:
    """The key of an event's record. JSON keeps every order id unambiguous, and
    the zero-padded sequence sorts an order's records in sequence order."""
    return json.dumps([order_req_id, f"{sequence:012d}"])


def event_put(event: OrderEvent[T], codec: Codec[T]) -> Put:
    """The record of event. Raises what codec.encode raises for data it cannot encode."""
    return Put(
        EVENTS,
        event_key(event.order_req_id, event.sequence),
        {
            VERSION: EVENT_VERSION,
            "order_req_id": event.order_req_id,
            "sequence": event.sequence,
            "kind": event.kind.value,
            "proposal_id": event.proposal_id,
            "text": event.text,
            "created_at": event.created_at,
            "data": None if event.data is None else codec.encode(event.data),
            "error": event.error,
        },
    )


def event_from_record(record: dict[str, Any], codec: Codec[T]) -> OrderEvent[T]:
    """The event whose record event_put made."""
    version_of(record, EVENT_VERSION)
    data = field(record, "data", object, nullable=True)
    return OrderEvent(
        order_req_id=field(record, "order_req_id", str),
        sequence=field(record, "sequence", int, minimum=1),
        kind=field(record, "kind", OrderEventKind),
        proposal_id=field(record, "proposal_id", str),
        text=field(record, "text", str),
        created_at=field(record, "created_at", float),
        data=None if data is None else codec.decode(data),
        error=field(record, "error", str),
    )
