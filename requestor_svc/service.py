"""Assembles the requestor service: its store, the processor downstream, the order
tasks (journaled for store sqlite, in the durable core for memory and
postgres), the servicer, readiness that follows the processor, and the serving
loop."""

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from queues.backoff import Backoff
from queues.task import TaskPriority
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc
from requestor_svc.config import RequestorConfig
from requestor_svc.convert import MAX_TIMEOUT_SECONDS
from requestor_svc.core_tasks import CoreTasks
from requestor_svc.journal_import import import_journal
from requestor_svc.order_follower import OrderFollower
from requestor_svc.servicer import RequestorServicer
from service_runtime.channels import downstream_security
from service_runtime.downstream import Downstream
from service_runtime.metrics.endpoint import serving_metrics
from service_runtime.metrics.service_metrics import ServiceMetrics, metrics_for
from service_runtime.scheduling import claim_policy
from service_runtime.server import (
    RunningServer,
    ServerSecurity,
    ServiceBinding,
    bind_server,
    serve_until_signalled,
)
from service_runtime.storage import job_store_for, store_lock
from service_runtime.store_readiness import (
    StoreCheck,
    store_check,
    track_downstream_and_store_readiness,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RequestorService"].full_name
PROCESSOR_SERVICE_NAME = processor_pb.DESCRIPTOR.services_by_name["ProcessorService"].full_name


def connect_processor(config: RequestorConfig, metrics: ServiceMetrics | None = None) -> Downstream:
    return Downstream(
        "processor service",
        config.processor_address,
        health_name=PROCESSOR_SERVICE_NAME,
        deadline=config.call_deadline,
        security=downstream_security(config),
        metrics=metrics.client if metrics is not None else None,
    )


async def open_tasks(
    config: RequestorConfig,
    processor: Downstream,
    undo: contextlib.AsyncExitStack,
    metrics: ServiceMetrics | None = None,
) -> tuple[CoreTasks, StoreCheck | None]:
    """The order tasks, following orders through processor, in an opened
    JobStore that undo closes (for store sqlite, an earlier release's journal
    imported into it first, once); and the check readiness follows
    (postgres's: whether the database answers)."""
    follower = OrderFollower(
        processor,
        watch_max_seconds=config.watch_max_seconds,
        backoff=Backoff(base=config.reconnect_backoff_base, cap=config.reconnect_backoff_cap),
    )
    data_dir = Path(config.data_dir)
    jobs_path = data_dir / "requestor-jobs.sqlite3"
    if config.store == "sqlite":
        await import_journal(
            data_dir / "requestor.sqlite3", jobs_path, default_timeout=config.default_task_timeout
        )
    commits = metrics.store.observer(config.store) if metrics is not None else None
    jobs = job_store_for(config.store, config.database_url, sqlite_path=jobs_path, commits=commits)
    undo.push_async_callback(jobs.close)
    await jobs.open()
    tasks = CoreTasks(
        jobs,
        follower.follow,
        follower.await_start,
        max_concurrent_tasks=config.max_concurrent_tasks,
        max_waiting_tasks=config.max_waiting_tasks,
        retention=config.result_retention_seconds,
        sweep_interval=config.cleanup_interval,
        default_timeout=config.default_task_timeout,
        longest_timeout=MAX_TIMEOUT_SECONDS,
        owner=f"{socket.gethostname()}:{os.getpid()}",
        lease=config.lease_seconds,
        heartbeat=config.heartbeat_seconds,
        backoff=Backoff(base=config.reconnect_backoff_base, cap=config.reconnect_backoff_cap),
        observer=metrics.queues.observe if metrics is not None else None,
        policy=claim_policy(config, top_priority=max(TaskPriority)),
    )
    if metrics is not None:
        metrics.on_scrape(lambda: _show_stats(tasks, metrics))
    return tasks, store_check(jobs)


async def _show_stats(tasks: CoreTasks, metrics: ServiceMetrics) -> None:
    stats = await tasks.stats()
    gauges = metrics.tasks
    gauges.active.set(stats.active_tasks)
    gauges.queued.set(stats.priority_queue_size)
    gauges.waiting.set(stats.waiting_tasks)
    gauges.kept.set(stats.completed_tasks)
    gauges.max_concurrent.set(stats.max_concurrent_tasks)


def binding(tasks: CoreTasks) -> ServiceBinding:
    servicer = RequestorServicer(tasks)
    return ServiceBinding(
        SERVICE_NAME,
        lambda server: pb_grpc.add_RequestorServiceServicer_to_server(servicer, server),
    )


class Requestor:
    """A started requestor service and everything it runs besides its server."""

    def __init__(
        self,
        server: RunningServer,
        tasks: CoreTasks,
        processor: Downstream,
        resources: contextlib.AsyncExitStack,
        readiness: asyncio.Task[None],
    ) -> None:
        self.server = server
        self._tasks = tasks
        self._processor = processor
        self._resources = resources
        self._readiness = readiness

    async def drain(self) -> None:
        """After the server stopped: stop following the processor's health, stop
        the tasks (the running ones stay queued in the store, to run again on the
        next start or on another replica), close the channel to the processor,
        then the store."""
        self._readiness.cancel()
        await asyncio.wait({self._readiness})
        await self._resources.aclose()


async def start_requestor(
    config: RequestorConfig, metrics: ServiceMetrics | None = None
) -> Requestor:
    """Bind the port (so a second service on it stops before it reads the
    store), open the store, bring back the tasks it holds, then serve; the
    service is ready only while the processor is. Raises StoreError if the
    store cannot be opened or read, OSError if the port cannot be bound; either
    way what was started is stopped again. The caller holds the store's lock
    (store_lock). metrics, when given, counts the RPCs, the calls to the
    processor, the task attempts and the store's commits, and shows the
    pool's stats at each scrape."""
    resources = contextlib.AsyncExitStack()
    async with contextlib.AsyncExitStack() as undo:
        bound = await bind_server(
            host=config.host,
            port=config.port,
            security=ServerSecurity.from_options(config),
            metrics=metrics,
        )
        undo.push_async_callback(bound.close)
        undo.push_async_callback(resources.aclose)
        processor = connect_processor(config, metrics)
        resources.push_async_callback(processor.close)
        tasks, check = await open_tasks(config, processor, resources, metrics)
        resources.push_async_callback(tasks.stop)
        await tasks.start()
        # Not ready until the first health check of the processor says so:
        # before that, the requestor cannot follow any order.
        server = await bound.start([binding(tasks)], ready=False)
        undo.pop_all()
    readiness = asyncio.create_task(
        processor.track_readiness(server, interval=config.health_interval)
        if check is None
        # postgres: ready only while the database answers too.
        else track_downstream_and_store_readiness(
            server, processor, check, interval=config.health_interval, name="requestor store"
        ),
        name="readiness",
    )
    return Requestor(server, tasks, processor, resources, readiness)


async def serve(config: RequestorConfig) -> None:
    """Lock the store, serve until SIGTERM or SIGINT, then drain the server,
    the tasks, the channel and the store."""
    metrics = metrics_for(config)
    with store_lock(config, "requestor"):
        async with serving_metrics(metrics, host=config.host, port=config.metrics_port):
            requestor = await start_requestor(config, metrics)
            await serve_until_signalled(
                requestor.server, grace=config.grace_seconds, on_drain=lambda _: requestor.drain()
            )
