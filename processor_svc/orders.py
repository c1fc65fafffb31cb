"""What the processor's servicer calls, and its answers' types.

StoredOrders (stored_orders.py) implements it over the durable core, with
every store: on memory for one process, on SQLite for one per data dir, on
PostgreSQL shared by every replica over one database.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from processor_svc.quote_pricer import ProposalQuote
from queues.order_events import OrderEvent
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

Event = OrderEvent[quote_pb.QueueMessage]


@dataclass(frozen=True, slots=True)
class ProcessorStats:
    """Bounded, whatever the number of orders."""

    #: Orders with a log: an accepted proposal or an event.
    orders: int
    events: int
    #: (order id, events held) of the busiest orders, most events first, then by id.
    busiest: list[tuple[str, int]]
    #: Watch streams open on this process.
    watchers: int
    #: Proposals accepted whose event is not yet appended.
    in_flight: int
    #: Orders with no event yet watched on this process.
    awaited: int


class Orders(Protocol):
    async def submit(
        self,
        order_req_id: str,
        proposal_id: str,
        proposal: ProposalQuote,
        *,
        request_id: str,
        fingerprint: str,
    ) -> bool:
        """Accept a proposal; True for a repeat of one accepted before. Raises
        ClosedError once stopping, RequestConflictError for a request_id used
        for another proposal, ExpiredError for a removed order, OrderFullError
        for one holding its most proposals, and InvalidStateError for a
        completed one."""

    def watch(self, order_req_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """Every event after after_sequence, then new ones, ending after
        ORDER_COMPLETED. Raises ValueError for a negative after_sequence,
        ExpiredError if the order was or is removed, CursorOutOfRangeError for
        a cursor past its last event, and WatchLimitError if it has no event
        yet and as many such orders as may be are watched already."""

    async def complete(self, order_req_id: str) -> Event:
        """The order's ORDER_COMPLETED event, appended once every accepted
        proposal has its event. Raises ClosedError once stopping and
        ExpiredError for a removed order."""

    async def stats(self, busiest: int) -> ProcessorStats: ...

    async def remove(self, order_req_id: str) -> bool:
        """Remove the order as the retention sweep would; whether it had a log."""

    async def exists(self, order_req_id: str) -> bool:
        """Whether the order has a log; asking creates none."""

    @property
    def watchers_count(self) -> int: ...
