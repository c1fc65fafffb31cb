"""The ceiling: QuoteService and ProcessorService doing nothing, served exactly as
the real services are (service_runtime.server.start_server: same options, same
interceptor, same JSON logging at the same level, same process model).

Every unary answer is a response precomputed at start-up, built by the real
service's own converters so it has the same fields and size. WatchOrder holds
a stream open like a real watcher; SubmitProposal hands the watchers of its
order one event at once (no pricing, no store), so the same client can measure
bare gRPC delivery. An order named "burst-N" streams N precomputed events and
the completion, as fast as gRPC takes them.

    python -m bench.noop_server --port P --log-level WARNING
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.noop_processor import RESULT
from queues.message import Message, MessageStatus, Priority
from queues.message_stats import PriorityCounts, QueueStats
from quote_svc import convert
from quote_svc.domain import QuoteResult, Submission
from quote_svc.pricing import QuoteJob
from quoteflow.processor.v1 import processor_service_pb2 as ppb
from quoteflow.processor.v1 import processor_service_pb2_grpc as ppb_grpc
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.config import ServerOptions
from service_runtime.server import (
    ServiceBinding,
    run_service,
    serve_until_signalled,
    start_server,
)

BURST_PREFIX = "burst-"


@dataclass
class NoopConfig(ServerOptions):
    """Only the options every service has: host, port, log level, grace."""


def sample_message(status: MessageStatus) -> Message[QuoteJob, QuoteResult]:
    """A message as the real queue holds it after SubmitQuote (PENDING) or once priced."""
    now = time.time()
    final = status is MessageStatus.COMPLETED
    return Message(
        id="0123456789abcdef0123456789abcdef",
        seq=1,
        payload=QuoteJob(Submission("Ada Lovelace", "12 St James Square, London", 250_000)),
        priority=Priority.NORMAL,
        status=status,
        created_at=now,
        max_retries=3,
        attempt_timeout=300.0,
        started_at=now if final else None,
        completed_at=now if final else None,
        result=RESULT if final else None,
    )


def _stats() -> QueueStats:
    return QueueStats(
        pending=0,
        processing=0,
        awaiting_review=0,
        completed=1,
        failed=0,
        cancelled=0,
        rejected=0,
        dead_letters=0,
        max_size=1000,
        workers=4,
        oldest_pending=None,
        longest_processing_seconds=0.0,
        by_priority=tuple(PriorityCounts(p, 0, 0) for p in Priority),
    )


class NoopQuoteServicer(pb_grpc.QuoteServiceServicer):
    def __init__(self) -> None:
        self._submitted = convert.with_message(
            pb.SubmitQuoteResponse(queue_position=0), sample_message(MessageStatus.PENDING)
        )
        convert.set_duration(self._submitted.estimated_processing_time, 1.0)
        self._message = convert.with_message(
            pb.GetMessageResponse(), sample_message(MessageStatus.COMPLETED)
        )
        self._stats = convert.stats_to_pb(_stats())

    async def SubmitQuote(
        self,
        request: pb.SubmitQuoteRequest,
        context: grpc.aio.ServicerContext[pb.SubmitQuoteRequest, pb.SubmitQuoteResponse],
    ) -> pb.SubmitQuoteResponse:
        return self._submitted

    async def GetMessage(
        self,
        request: pb.GetMessageRequest,
        context: grpc.aio.ServicerContext[pb.GetMessageRequest, pb.GetMessageResponse],
    ) -> pb.GetMessageResponse:
        return self._message

    async def GetStats(
        self,
        request: pb.GetStatsRequest,
        context: grpc.aio.ServicerContext[pb.GetStatsRequest, pb.GetStatsResponse],
    ) -> pb.GetStatsResponse:
        return self._stats


class NoopProcessorServicer(ppb_grpc.ProcessorServiceServicer):
    def __init__(self) -> None:
        self._event = ppb.WatchOrderResponse(
            event=ppb.OrderEvent(
                order_req_id="burst",
                sequence=1,
                kind=ppb.ORDER_EVENT_KIND_PROPOSAL_NEW,
                proposal_id="p",
                text="p/New",
            )
        )
        convert.set_message(self._event.event.quote, sample_message(MessageStatus.COMPLETED))
        convert.set_timestamp(self._event.event.created_at, time.time())
        self._quote = self._event.event.quote
        self._watchers: dict[str, set[asyncio.Queue[ppb.WatchOrderResponse]]] = {}
        self._watching = 0

    async def SubmitProposal(
        self,
        request: ppb.SubmitProposalRequest,
        context: grpc.aio.ServicerContext[ppb.SubmitProposalRequest, ppb.SubmitProposalResponse],
    ) -> ppb.SubmitProposalResponse:
        # The real processor stamps created_at when it appends the event; here
        # that is now, so delivery from created_at is bare gRPC's.
        created_at = Timestamp()
        created_at.GetCurrentTime()
        event = ppb.WatchOrderResponse(
            event=ppb.OrderEvent(
                order_req_id=request.order_req_id,
                sequence=1,
                kind=ppb.ORDER_EVENT_KIND_PROPOSAL_NEW,
                proposal_id=request.proposal_id,
                quote=self._quote,
                created_at=created_at,
                text=f"{request.proposal_id}/New",
            )
        )
        for queue in self._watchers.get(request.order_req_id, ()):
            queue.put_nowait(event)
        return ppb.SubmitProposalResponse(
            order_req_id=request.order_req_id, proposal_id=request.proposal_id
        )

    async def WatchOrder(
        self,
        request: ppb.WatchOrderRequest,
        context: grpc.aio.ServicerContext[ppb.WatchOrderRequest, ppb.WatchOrderResponse],
    ) -> AsyncIterator[ppb.WatchOrderResponse]:
        order = request.order_req_id
        if order.startswith(BURST_PREFIX):
            for _ in range(int(order.removeprefix(BURST_PREFIX))):
                yield self._event
            yield ppb.WatchOrderResponse(
                event=ppb.OrderEvent(kind=ppb.ORDER_EVENT_KIND_ORDER_COMPLETED)
            )
            return
        queue: asyncio.Queue[ppb.WatchOrderResponse] = asyncio.Queue()
        watchers = self._watchers.setdefault(order, set())
        watchers.add(queue)
        self._watching += 1
        try:
            while True:
                yield await queue.get()
        finally:
            self._watching -= 1
            watchers.discard(queue)
            if not watchers:
                del self._watchers[order]

    async def GetStats(
        self,
        request: ppb.GetStatsRequest,
        context: grpc.aio.ServicerContext[ppb.GetStatsRequest, ppb.GetStatsResponse],
    ) -> ppb.GetStatsResponse:
        return ppb.GetStatsResponse(watchers_count=self._watching)


async def serve(config: NoopConfig) -> None:
    quote = NoopQuoteServicer()
    processor = NoopProcessorServicer()
    bindings = [
        ServiceBinding(
            pb.DESCRIPTOR.services_by_name["QuoteService"].full_name,
            lambda server: pb_grpc.add_QuoteServiceServicer_to_server(quote, server),
        ),
        ServiceBinding(
            ppb.DESCRIPTOR.services_by_name["ProcessorService"].full_name,
            lambda server: ppb_grpc.add_ProcessorServiceServicer_to_server(processor, server),
        ),
    ]
    server = await start_server(bindings, host=config.host, port=config.port)
    await serve_until_signalled(server, grace=config.grace_seconds)


if __name__ == "__main__":
    run_service(
        NoopConfig, env_prefix="BENCH_NOOP", description="quoteflow no-op ceiling", serve=serve
    )
