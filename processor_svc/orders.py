"""What the processor's servicer calls: one interface, two implementations.

JournaledOrders (store sqlite) keeps the orders in memory over a journal, for
one process; StoredOrders (store memory or postgres) keeps them in the
durable core, where every replica over one database shares them.
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
        """Accept a proposal; True for a repeat of one accepted before (see
        ProposalDesk.submit for the errors)."""

    def watch(self, order_req_id: str, after_sequence: int) -> AsyncIterator[Event]:
        """Every event after after_sequence, then new ones, ending after
        ORDER_COMPLETED (see OrderQueueManager.watch for the errors)."""

    async def complete(self, order_req_id: str) -> Event:
        """The order's ORDER_COMPLETED event, appended once every accepted
        proposal has its event (see ProposalDesk.complete)."""

    async def stats(self, busiest: int) -> ProcessorStats: ...

    async def remove(self, order_req_id: str) -> bool:
        """Remove the order as the retention sweep would; whether it had a log."""

    async def exists(self, order_req_id: str) -> bool:
        """Whether the order has a log; asking creates none."""

    @property
    def watchers_count(self) -> int: ...
