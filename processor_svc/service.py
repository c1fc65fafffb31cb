"""Assembles the processor service: order queues, the proposal desk pricing through
the quote service, the servicer, and readiness that follows the quote service."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from processor_svc.config import ProcessorConfig
from processor_svc.proposal_desk import ProposalDesk
from processor_svc.quote_pricer import ProposalQuote, QuotePricer
from processor_svc.servicer import ProcessorServicer
from queues.order_queues import OrderQueueManager
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.downstream import Downstream
from service_runtime.server import (
    RunningServer,
    ServiceBinding,
    serve_until_signalled,
    start_server,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProcessorService"].full_name
QUOTE_SERVICE_NAME = quote_pb.DESCRIPTOR.services_by_name["QuoteService"].full_name


@dataclass
class Processor:
    """A running processor service and the parts a test may want to reach."""

    server: RunningServer
    orders: OrderQueueManager[quote_pb.QueueMessage]
    desk: ProposalDesk[ProposalQuote, quote_pb.QueueMessage]


@contextlib.asynccontextmanager
async def running(config: ProcessorConfig) -> AsyncIterator[Processor]:
    """Serve until the block exits, then stop in order: no new calls, no more
    readiness checks, no more pricing, and the quote channel closed."""
    quote = Downstream(
        "quote service",
        config.quote_address,
        health_name=QUOTE_SERVICE_NAME,
        deadline=config.call_deadline,
    )
    orders: OrderQueueManager[quote_pb.QueueMessage] = OrderQueueManager(
        completed_retention=config.completed_retention, cleanup_interval=config.cleanup_interval
    )
    desk = ProposalDesk(orders, QuotePricer(quote, pricing_timeout=config.pricing_timeout))
    servicer = ProcessorServicer(orders, desk)
    binding = ServiceBinding(
        SERVICE_NAME, lambda srv: pb_grpc.add_ProcessorServiceServicer_to_server(servicer, srv)
    )
    await orders.start()
    # Not ready until the first health check of the quote service says so.
    server = await start_server([binding], host=config.host, port=config.port, ready=False)
    readiness = asyncio.create_task(quote.track_readiness(server, interval=config.health_interval))
    try:
        yield Processor(server, orders, desk)
    finally:
        await server.stop(config.grace_seconds)
        readiness.cancel()
        await desk.close()
        await orders.stop()
        await quote.close()


async def serve(config: ProcessorConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    async with running(config) as processor:
        await serve_until_signalled(processor.server, grace=config.grace_seconds)
