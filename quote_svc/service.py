"""Assembles the quote service: its queue, its servicer, and its serving loop."""

import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

from queues.backoff import Backoff
from queues.core.job_store import JobStore
from queues.core.jobs import Claim, JobState
from queues.message import Handler, Priority
from queues.message_records import MessageCodec
from queues.store_queue import StoreMessageQueue
from quote_svc.codecs import QuoteJobCodec, QuoteResultCodec
from quote_svc.config import QuoteConfig
from quote_svc.domain import QuoteResult
from quote_svc.journal_import import import_journal, jobs_path
from quote_svc.pricing import QuoteJob, job_handler
from quote_svc.processors import ProcessorRegistry, default_registry
from quote_svc.quote_queue import QuoteQueue
from quote_svc.servicer import QuoteServicer
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.metrics.endpoint import serving_metrics
from service_runtime.metrics.queue import message_queue_snapshot
from service_runtime.metrics.service_metrics import ServiceMetrics, metrics_for
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE
from service_runtime.scheduling import claim_policy
from service_runtime.server import (
    ServerSecurity,
    ServiceBinding,
    bind_server,
    serve_until_signalled,
    work_until_signalled,
)
from service_runtime.storage import job_store_for, store_lock
from service_runtime.store_readiness import (
    DEFAULT_INTERVAL,
    StoreCheck,
    store_check,
    store_readiness_tracked,
)

logger = logging.getLogger("quote_svc.service")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["QuoteService"].full_name
#: The JobStore queue the quote service's messages are jobs of.
QUEUE_NAME = "quotes"
# Jobs read at once by the check at start (store sqlite).
_CHECK_PAGE = 500


def build_queue(
    config: QuoteConfig,
    store: JobStore,
    registry: ProcessorRegistry | None = None,
    metrics: ServiceMetrics | None = None,
) -> QuoteQueue:
    """The quote queue over store (opened by the caller), pricing with
    registry, its attempts counted in metrics and its stats shown at each scrape."""
    queue: QuoteQueue = StoreMessageQueue(
        _handler(config, registry),
        store=store,
        queue=QUEUE_NAME,
        workers=config.workers,
        max_size=config.max_size,
        max_retries=config.max_retries,
        attempt_timeout=config.attempt_timeout,
        retention=config.retention_seconds,
        sweep_interval=config.sweep_interval,
        backoff=Backoff(base=config.backoff_base, cap=config.backoff_cap),
        lease=config.lease_seconds,
        heartbeat=config.heartbeat_seconds,
        payload_codec=QuoteJobCodec(),
        result_codec=QuoteResultCodec(),
        # Who holds a claim, for an operator reading the store.
        owner=f"{socket.gethostname()}:{os.getpid()}",
        observer=metrics.queues.observe if metrics is not None else None,
        policy=claim_policy(config, top_priority=Priority.URGENT),
    )
    if metrics is not None:
        metrics.on_scrape(lambda: _show_stats(queue, metrics))
    return queue


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
async def opened_queue(
    config: QuoteConfig,
    registry: ProcessorRegistry | None = None,
    metrics: ServiceMetrics | None = None,
) -> AsyncIterator[tuple[QuoteQueue, StoreCheck | None]]:
    """The queue over its opened store, closed after, and the check readiness
    follows (postgres's: whether the database answers; None for the others).
    With store sqlite, the store is <data_dir>/quote-jobs.sqlite3, into which
    an earlier release's journal is imported first, once (journal_import.py).
    Raises StoreError, RecordError if the store (or the journal) cannot be
    read."""
    sqlite_path = None
    if config.store == "sqlite":
        data_dir = Path(config.data_dir)
        codec = MessageCodec(QuoteJobCodec(), QuoteResultCodec())
        await import_journal(data_dir, queue=QUEUE_NAME, codec=codec)
        sqlite_path = jobs_path(data_dir)
    commits = metrics.store.observer(config.store) if metrics is not None else None
    store = job_store_for(
        config.store, config.database_url, sqlite_path=sqlite_path, commits=commits
    )
    try:
        await store.open()
        if config.store == "sqlite":
            await _read_every_job(store)
        yield build_queue(config, store, registry, metrics), store_check(store)
    finally:
        await store.close()


async def _show_stats(queue: QuoteQueue, metrics: ServiceMetrics) -> None:
    metrics.queues.show(QUEUE_NAME, message_queue_snapshot(await queue.stats(), time.time()))


async def _read_every_job(store: JobStore) -> None:
    """Read every message of the file once, as the journaled queue did at start,
    so that a row that cannot be read stops the start with the RecordError
    naming the file and the job, rather than failing the calls that meet it;
    and hand back every attempt the file says is running: the data-dir lock
    admits one service, so those died with the one before, and their messages
    are PENDING again at once rather than when their leases run out. Nothing
    read is kept."""
    after: int | None = 0
    while after is not None:
        page = await store.list(QUEUE_NAME, states=None, after=after, limit=_CHECK_PAGE)
        for job in page.jobs:
            if job.state is JobState.RUNNING:
                await store.release(Claim(job, job.attempt), now=time.time())
        after = page.next_after


async def serve(config: QuoteConfig) -> None:
    """Serve calls and price (api true), or only price (api false: work())."""
    if config.api:
        await serve_calls(config)
    else:
        await work(config)


async def work(config: QuoteConfig) -> None:
    """A worker process (store postgres): no port, no servicer; its workers
    claim what any replica accepted until SIGTERM or SIGINT, then drain them
    within the grace. Its changes reach every replica's watchers through the
    database."""
    metrics = metrics_for(config)
    async with (
        opened_queue(config, metrics=metrics) as (queue, _check),
        serving_metrics(metrics, host=config.host, port=config.metrics_port),
    ):
        await queue.start()
        logger.info("working", extra={FIELDS_ATTRIBUTE: {"workers": config.workers}})
        await work_until_signalled(grace=config.grace_seconds, on_drain=queue.stop)


async def serve_calls(config: QuoteConfig) -> None:
    """Lock the store and bind the port, so a second service on either stops
    before it reads anything; open the store and start the queue over it,
    serve until SIGTERM or SIGINT, then drain: the server, the queue's
    attempts, and the store. Replicas over one postgres store lock nothing:
    they share it."""
    metrics = metrics_for(config)
    with store_lock(config, "quote"):
        bound = await bind_server(
            host=config.host,
            port=config.port,
            security=ServerSecurity.from_options(config),
            metrics=metrics,
        )
        try:
            async with (
                serving_metrics(metrics, host=config.host, port=config.metrics_port),
                opened_queue(config, metrics=metrics) as (queue, check),
            ):
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
