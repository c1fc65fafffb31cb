"""Assembles the quote service: its queue, its servicer, and its serving loop."""

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from queues.backoff import Backoff
from queues.core.job_store import JobStore
from queues.message_queue import Handler, MessageQueue
from queues.storage import Store
from queues.store_queue import StoreMessageQueue
from quote_svc.codecs import QuoteJobCodec, QuoteResultCodec
from quote_svc.config import QuoteConfig
from quote_svc.domain import QuoteResult
from quote_svc.pricing import QuoteJob, job_handler
from quote_svc.processors import ProcessorRegistry, default_registry
from quote_svc.quote_queue import JournalQueue, QuoteQueue
from quote_svc.servicer import QuoteServicer
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.server import ServiceBinding, bind_server, serve_until_signalled
from service_runtime.storage import job_store_for, store_for, store_lock
from service_runtime.store_readiness import (
    DEFAULT_INTERVAL,
    StoreCheck,
    store_check,
    store_readiness_tracked,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QuoteService"].full_name
#: The JobStore queue the quote service's messages are jobs of.
QUEUE_NAME = "quotes"


def build_queue(
    config: QuoteConfig, store: JobStore, registry: ProcessorRegistry | None = None
) -> QuoteQueue:
    """The quote queue over store (opened by the caller), pricing with registry."""
    return StoreMessageQueue(
        _handler(config, registry),
        store=store,
        queue=QUEUE_NAME,
        lease=config.lease_seconds,
        heartbeat=config.heartbeat_seconds,
        # Who holds a claim, for an operator reading the store.
        owner=f"{socket.gethostname()}:{os.getpid()}",
        **_queue_options(config),
    )


def build_journal_queue(
    config: QuoteConfig, store: Store, registry: ProcessorRegistry | None = None
) -> QuoteQueue:
    """The journaled quote queue of store sqlite, over store (opened by the caller)."""
    return JournalQueue(
        MessageQueue(_handler(config, registry), store=store, **_queue_options(config))
    )


def _queue_options(config: QuoteConfig) -> dict[str, Any]:
    """What both queues take from the configuration alike."""
    return {
        "workers": config.workers,
        "max_size": config.max_size,
        "max_retries": config.max_retries,
        "attempt_timeout": config.attempt_timeout,
        "retention": config.retention_seconds,
        "sweep_interval": config.sweep_interval,
        "backoff": Backoff(base=config.backoff_base, cap=config.backoff_cap),
        "payload_codec": QuoteJobCodec(),
        "result_codec": QuoteResultCodec(),
    }


def _handler(
    config: QuoteConfig, registry: ProcessorRegistry | None
) -> Handler[QuoteJob, QuoteResult]:
    return job_handler(
        registry or default_registry(), default=config.processor, agentic=config.agentic_processor
    )


def binding(queue: QuoteQueue) -> ServiceBinding:
    servicer = QuoteServicer(queue)
    return ServiceBinding(
        SERVICE_NAME, lambda server: pb_grpc.add_QuoteServiceServicer_to_server(servicer, server)
    )


@contextlib.asynccontextmanager
async def _opened_queue(config: QuoteConfig) -> AsyncIterator[tuple[QuoteQueue, StoreCheck | None]]:
    """The queue over its opened store, closed after, and the check readiness
    follows (postgres's: whether the database answers; None for the others)."""
    if config.store == "sqlite":
        journal = store_for(config, "quote")
        try:
            await journal.open()
            yield build_journal_queue(config, journal), None
        finally:
            await journal.close()
        return
    store = job_store_for(config.store, config.database_url)
    try:
        await store.open()
        yield build_queue(config, store), store_check(store)
    finally:
        await store.close()


async def serve(config: QuoteConfig) -> None:
    """Lock the store and bind the port, so a second service on either stops
    before it reads anything; open the store and start the queue over it,
    serve until SIGTERM or SIGINT, then drain: the server, the queue's
    attempts, and the store. Replicas over one postgres store lock nothing:
    they share it."""
    with store_lock(config, "quote"):
        bound = await bind_server(host=config.host, port=config.port)
        try:
            async with _opened_queue(config) as (queue, check):
                await queue.start()
                server = await bound.start([binding(queue)])
                # Ready only while the database answers (postgres).
                async with store_readiness_tracked(
                    server, check, interval=DEFAULT_INTERVAL, name="quote store"
                ):
                    await serve_until_signalled(
                        server, grace=config.grace_seconds, on_drain=queue.stop
                    )
        finally:
            await bound.close()
