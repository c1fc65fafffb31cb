"""Orders of store sqlite: the order queues and the proposal desk over one
journal, in one process."""

from collections.abc import AsyncIterator

from processor_svc.orders import Event, ProcessorStats
from processor_svc.proposal_desk import ProposalDesk
from processor_svc.quote_pricer import ProposalQuote
from queues.order_queues import OrderQueueManager
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb


class JournaledOrders:
    def __init__(
        self,
        orders: OrderQueueManager[quote_pb.QueueMessage],
        desk: ProposalDesk[ProposalQuote, quote_pb.QueueMessage],
    ) -> None:
        self._orders = orders
        self._desk = desk

    async def submit(
        self,
        order_req_id: str,
        proposal_id: str,
        proposal: ProposalQuote,
        *,
        request_id: str,
        fingerprint: str,
    ) -> bool:
        return await self._desk.submit(
            order_req_id, proposal_id, proposal, request_id=request_id, fingerprint=fingerprint
        )

    def watch(self, order_req_id: str, after_sequence: int) -> AsyncIterator[Event]:
        return self._orders.watch(order_req_id, after_sequence)

    async def complete(self, order_req_id: str) -> Event:
        return await self._desk.complete(order_req_id)

    async def stats(self, busiest: int) -> ProcessorStats:
        stats = self._orders.stats(busiest=busiest)
        return ProcessorStats(
            orders=stats.orders,
            events=stats.events,
            busiest=stats.busiest,
            watchers=self._orders.watchers_count,
            in_flight=self._desk.in_flight,
            awaited=stats.awaited,
        )

    async def remove(self, order_req_id: str) -> bool:
        return await self._orders.remove_order_queue(order_req_id)

    async def exists(self, order_req_id: str) -> bool:
        return self._orders.has_order_queue(order_req_id)

    @property
    def watchers_count(self) -> int:
        return self._orders.watchers_count
