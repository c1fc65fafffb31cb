"""Assembles the quote service: its queue, its servicer, and its serving loop."""

from queues.backoff import Backoff
from queues.message_queue import MessageQueue
from queues.storage import Store
from quote_svc.codecs import QuoteJobCodec, QuoteResultCodec
from quote_svc.config import QuoteConfig
from quote_svc.pricing import job_handler
from quote_svc.processors import ProcessorRegistry, default_registry
from quote_svc.servicer import Queue, QuoteServicer
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.server import ServiceBinding, bind_server, serve_until_signalled
from service_runtime.storage import store_for, store_lock

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QuoteService"].full_name


def build_queue(
    config: QuoteConfig, store: Store, registry: ProcessorRegistry | None = None
) -> Queue:
    """The quote queue over store (opened by the caller), pricing with registry."""
    return MessageQueue(
        job_handler(
            registry or default_registry(),
            default=config.processor,
            agentic=config.agentic_processor,
        ),
        workers=config.workers,
        max_size=config.max_size,
        max_retries=config.max_retries,
        attempt_timeout=config.attempt_timeout,
        retention=config.retention_seconds,
        sweep_interval=config.sweep_interval,
        backoff=Backoff(base=config.backoff_base, cap=config.backoff_cap),
        store=store,
        payload_codec=QuoteJobCodec(),
        result_codec=QuoteResultCodec(),
    )


def binding(queue: Queue) -> ServiceBinding:
    servicer = QuoteServicer(queue)
    return ServiceBinding(
        SERVICE_NAME, lambda server: pb_grpc.add_QuoteServiceServicer_to_server(servicer, server)
    )


async def serve(config: QuoteConfig) -> None:
    """Lock the store and bind the port, so a second service on either stops
    before it reads anything; open the store and recover the queue from it,
    serve until SIGTERM or SIGINT, then drain: the server, the queue's
    attempts, and the store."""
    with store_lock(config, "quote"):
        bound = await bind_server(host=config.host, port=config.port)
        store = store_for(config, "quote")
        try:
            await store.open()
            queue = build_queue(config, store)
            await queue.start()
            server = await bound.start([binding(queue)])
            await serve_until_signalled(server, grace=config.grace_seconds, on_drain=queue.stop)
        finally:
            await store.close()
            await bound.close()
