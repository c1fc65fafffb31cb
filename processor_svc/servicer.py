"""ProcessorService: translates between quoteflow.processor.v1 and the orders
(processor_svc/orders.py). Raised errors become statuses in service_runtime's
interceptor."""

from collections.abc import AsyncIterator

import grpc

from processor_svc import convert
from processor_svc.orders import Orders
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc
from service_runtime.validation import require_id

#: How many orders GetStats lists in events_by_order: bounds its size (100
#: ids of at most 128 characters), whatever the number of orders.
STATS_BUSIEST_ORDERS = 100


class ProcessorServicer(pb_grpc.ProcessorServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self._orders = orders

    async def SubmitProposal(
        self,
        request: pb.SubmitProposalRequest,
        context: grpc.aio.ServicerContext[pb.SubmitProposalRequest, pb.SubmitProposalResponse],
    ) -> pb.SubmitProposalResponse:
        proposal = convert.proposal(request)
        duplicate = await self._orders.submit(
            request.order_req_id,
            request.proposal_id,
            proposal,
            request_id=request.request_id,
            fingerprint=proposal.fingerprint(),
        )
        return pb.SubmitProposalResponse(
            order_req_id=request.order_req_id,
            proposal_id=request.proposal_id,
            duplicate=duplicate,
        )

    async def WatchOrder(
        self,
        request: pb.WatchOrderRequest,
        context: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse],
    ) -> AsyncIterator[pb.WatchOrderResponse]:
        after = convert.watch_cursor(request)
        async for event in self._orders.watch(request.order_req_id, after):
            yield pb.WatchOrderResponse(event=convert.event_to_pb(event))

    async def CompleteOrder(
        self,
        request: pb.CompleteOrderRequest,
        context: grpc.aio.ServicerContext[pb.CompleteOrderRequest, pb.CompleteOrderResponse],
    ) -> pb.CompleteOrderResponse:
        event = await self._orders.complete(require_id("order_req_id", request.order_req_id))
        return pb.CompleteOrderResponse(event=convert.event_to_pb(event))

    async def GetStats(
        self,
        request: pb.GetStatsRequest,
        context: grpc.aio.ServicerContext[pb.GetStatsRequest, pb.GetStatsResponse],
    ) -> pb.GetStatsResponse:
        stats = await self._orders.stats(busiest=STATS_BUSIEST_ORDERS)
        return pb.GetStatsResponse(
            order_queues_count=stats.orders,
            events_by_order=dict(stats.busiest),
            watchers_count=stats.watchers,
            proposals_in_flight=stats.in_flight,
            events_count=stats.events,
            awaited_orders_count=stats.awaited,
        )
