"""Assembles the requestor service: its store, the processor downstream, the order
tasks, the servicer, readiness that follows the processor, and the serving loop."""

import asyncio
import contextlib

from queues.backoff import Backoff
from queues.storage import Store
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc
from requestor_svc.config import RequestorConfig
from requestor_svc.order_follower import OrderFollower
from requestor_svc.order_tasks import OrderTasks
from requestor_svc.servicer import RequestorServicer
from service_runtime.downstream import Downstream
from service_runtime.server import (
    RunningServer,
    ServiceBinding,
    bind_server,
    serve_until_signalled,
)
from service_runtime.storage import store_for, store_lock

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RequestorService"].full_name
PROCESSOR_SERVICE_NAME = processor_pb.DESCRIPTOR.services_by_name["ProcessorService"].full_name


def connect_processor(config: RequestorConfig) -> Downstream:
    return Downstream(
        "processor service",
        config.processor_address,
        health_name=PROCESSOR_SERVICE_NAME,
        deadline=config.call_deadline,
    )


def build_tasks(config: RequestorConfig, processor: Downstream, store: Store) -> OrderTasks:
    """The order tasks, kept in store (opened by the caller), following orders
    through processor."""
    follower = OrderFollower(
        processor,
        watch_max_seconds=config.watch_max_seconds,
        backoff=Backoff(base=config.reconnect_backoff_base, cap=config.reconnect_backoff_cap),
    )
    return OrderTasks(
        follower.follow,
        max_concurrent_tasks=config.max_concurrent_tasks,
        retention=config.result_retention_seconds,
        sweep_interval=config.cleanup_interval,
        default_timeout=config.default_task_timeout,
        await_start=follower.await_start,
        store=store,
    )


def binding(tasks: OrderTasks) -> ServiceBinding:
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
        tasks: OrderTasks,
        processor: Downstream,
        store: Store,
        readiness: asyncio.Task[None],
    ) -> None:
        self.server = server
        self._tasks = tasks
        self._processor = processor
        self._store = store
        self._readiness = readiness

    async def drain(self) -> None:
        """After the server stopped: stop following the processor's health, stop
        the tasks (the running ones stay queued in the store, to run again on the
        next start), close the channel to the processor, then the store."""
        self._readiness.cancel()
        await asyncio.wait({self._readiness})
        await self._tasks.stop()
        await self._processor.close()
        await self._store.close()


async def start_requestor(config: RequestorConfig) -> Requestor:
    """Bind the port (so a second service on it stops before it reads the
    store), open the store, bring back the tasks it holds, then serve; the
    service is ready only while the processor is. Raises StoreError if the
    store cannot be opened or read, OSError if the port cannot be bound; either
    way what was started is stopped again. The caller holds the store's lock
    (store_lock)."""
    async with contextlib.AsyncExitStack() as undo:
        bound = await bind_server(host=config.host, port=config.port)
        undo.push_async_callback(bound.close)
        store = store_for(config, "requestor")
        undo.push_async_callback(store.close)
        await store.open()
        processor = connect_processor(config)
        undo.push_async_callback(processor.close)
        tasks = build_tasks(config, processor, store)
        undo.push_async_callback(tasks.stop)
        await tasks.start()
        # Not ready until the first health check of the processor says so:
        # before that, the requestor cannot follow any order.
        server = await bound.start([binding(tasks)], ready=False)
        undo.pop_all()
    readiness = asyncio.create_task(
        processor.track_readiness(server, interval=config.health_interval),
        name="processor-readiness",
    )
    return Requestor(server, tasks, processor, store, readiness)


async def serve(config: RequestorConfig) -> None:
    """Lock the store, serve until SIGTERM or SIGINT, then drain the server,
    the tasks, the channel and the store."""
    with store_lock(config, "requestor"):
        requestor = await start_requestor(config)
        await serve_until_signalled(
            requestor.server, grace=config.grace_seconds, on_drain=lambda _: requestor.drain()
        )
