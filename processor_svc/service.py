"""Assembles the processor service: its orders in the durable core (SQLite
files, memory or PostgreSQL), pricing through the quote service, the
servicer, and readiness that follows the quote service (and the database)."""

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from processor_svc.config import ProcessorConfig
from processor_svc.journal_import import import_journal, journal_path
from processor_svc.orders import Orders
from processor_svc.quote_pricer import QuotePricer
from processor_svc.request_id_key import stored_request_id_key
from processor_svc.servicer import ProcessorServicer
from processor_svc.stored_orders import StoredOrders
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.channels import downstream_security
from service_runtime.downstream import Downstream
from service_runtime.metrics.endpoint import serving_metrics
from service_runtime.metrics.service_metrics import ServiceMetrics, metrics_for
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE
from service_runtime.server import (
    RunningServer,
    ServerSecurity,
    ServiceBinding,
    bind_server,
    serve_until_signalled,
)
from service_runtime.storage import job_store_for, log_store_for, store_lock
from service_runtime.store_readiness import (
    StoreCheck,
    store_check,
    track_downstream_and_store_readiness,
)

logger = logging.getLogger("processor_svc.service")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProcessorService"].full_name
QUOTE_SERVICE_NAME = quote_pb.DESCRIPTOR.services_by_name["QuoteService"].full_name


@dataclass
class RunningProcessor:
    """A running processor service and the parts a test may want to reach."""

    server: RunningServer
    orders: Orders


@contextlib.asynccontextmanager
async def running(
    config: ProcessorConfig, metrics: ServiceMetrics | None = None
) -> AsyncIterator[RunningProcessor]:
    """Open the store (locking its data dir, for sqlite) and bind the port,
    rebuild or reach the orders, then serve until the block exits. Raises
    StoreError, before serving, if the store cannot be opened or read, OSError
    if the store is locked or the port cannot be bound.

    Then stops in order: no new calls (those in flight get the grace), no more
    readiness checks, no more pricing (unpriced proposals stay accepted in the
    store, and the next start, or another replica, prices them), the quote
    channel and the store closed.

    metrics, when given, counts the RPCs, the calls to the quote service, the
    pricing attempts and the store's commits, and shows the order logs'
    stats at each scrape.
    """
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(store_lock(config, "processor"))
        bound = await bind_server(
            host=config.host,
            port=config.port,
            security=ServerSecurity.from_options(config),
            metrics=metrics,
        )
        stack.push_async_callback(bound.close)
        quote = Downstream(
            "quote service",
            config.quote_address,
            health_name=QUOTE_SERVICE_NAME,
            deadline=config.call_deadline,
            security=downstream_security(config),
            metrics=metrics.client if metrics is not None else None,
        )
        stack.push_async_callback(quote.close)
        orders, check = await _stored(config, quote, stack, metrics)
        if metrics is not None:
            metrics.on_scrape(lambda: _show_stats(orders, metrics))
        servicer = ProcessorServicer(orders)
        binding = ServiceBinding(
            SERVICE_NAME, lambda srv: pb_grpc.add_ProcessorServiceServicer_to_server(servicer, srv)
        )
        # Not ready until the first health check of the quote service says so.
        server = await bound.start([binding], ready=False)
        stack.push_async_callback(server.stop, config.grace_seconds)
        readiness = asyncio.create_task(
            quote.track_readiness(server, interval=config.health_interval)
            if check is None
            # postgres: ready only while the database answers too.
            else track_downstream_and_store_readiness(
                server, quote, check, interval=config.health_interval, name="processor store"
            )
        )
        stack.callback(readiness.cancel)
        yield RunningProcessor(server, orders)


async def _show_stats(orders: Orders, metrics: ServiceMetrics) -> None:
    stats = await orders.stats(busiest=0)
    gauges = metrics.orders
    gauges.orders.set(stats.orders)
    gauges.events.set(stats.events)
    gauges.watchers.set(stats.watchers)
    gauges.awaited.set(stats.awaited)
    gauges.in_flight.set(stats.in_flight)


async def _stored(
    config: ProcessorConfig,
    quote: Downstream,
    stack: contextlib.AsyncExitStack,
    metrics: ServiceMetrics | None,
) -> tuple[StoredOrders, StoreCheck | None]:
    """The orders in the durable core: nothing to rebuild, since every read
    answers from the store (an earlier release's journal is imported first,
    once); and the check readiness follows (postgres's: whether the database
    answers; None for the others)."""
    data_dir = Path(config.data_dir)
    commits = metrics.store.observer(config.store) if metrics is not None else None
    logs = log_store_for(
        config.store,
        config.database_url,
        sqlite_path=data_dir / "processor-logs.sqlite3",
        commits=commits,
    )
    jobs = job_store_for(
        config.store,
        config.database_url,
        sqlite_path=data_dir / "processor-jobs.sqlite3",
        commits=commits,
    )
    for store in (logs, jobs):
        stack.push_async_callback(store.close)
        await store.open()
    if config.store == "sqlite":
        await import_journal(journal_path(data_dir), logs, jobs, now=time.time())
    pricer = QuotePricer(
        quote,
        pricing_timeout=config.pricing_timeout,
        request_id_key=await stored_request_id_key(logs, now=time.time()),
    )
    orders = StoredOrders(
        logs,
        jobs,
        pricer,
        owner=f"{socket.gethostname()}:{os.getpid()}",
        max_proposals=config.max_proposals_per_order,
        completion_wait=config.completion_wait,
        pricing_timeout=config.pricing_timeout,
        completed_retention=config.completed_retention,
        tombstone_retention=config.tombstone_retention,
        sweep_interval=config.cleanup_interval,
        max_awaited_orders=config.max_awaited_orders,
        lease=config.lease_seconds,
        heartbeat=config.heartbeat_seconds,
        pricing_concurrency=config.pricing_concurrency,
        observer=metrics.queues.observe if metrics is not None else None,
    )
    await orders.start()
    stack.push_async_callback(orders.stop)
    held = await orders.stats(busiest=0)
    logger.info(
        "recovered",
        extra={FIELDS_ATTRIBUTE: {"orders": held.orders, "proposals_in_flight": held.in_flight}},
    )
    return orders, store_check(logs, jobs)


async def serve(config: ProcessorConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    metrics = metrics_for(config)
    async with (
        running(config, metrics) as processor,
        serving_metrics(metrics, host=config.host, port=config.metrics_port),
    ):
        await serve_until_signalled(processor.server, grace=config.grace_seconds)
