"""A requestor service in-process on port 0 (its tasks in memory), following orders
from a scripted fake ProcessorService that the test feeds event by event; and a
client for a requestor running anywhere."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as processor_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc
from requestor_svc.config import RequestorConfig
from requestor_svc.service import PROCESSOR_SERVICE_NAME, Requestor, start_requestor
from service_runtime.server import RunningServer, ServiceBinding, start_server
from support.polling import POLL_DEADLINE_SECONDS, poll

T = TypeVar("T")


FINAL = frozenset(
    {
        pb.TASK_STATUS_SUCCEEDED,
        pb.TASK_STATUS_FAILED,
        pb.TASK_STATUS_CANCELLED,
        pb.TASK_STATUS_TIMED_OUT,
    }
)

NEW = processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW
FAILED = processor_pb.ORDER_EVENT_KIND_PROPOSAL_FAILED
COMPLETED = processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED


class FakeProcessor(processor_grpc.ProcessorServiceServicer):
    """Serves WatchOrder from per-order event lists the test appends to.

    Like the real processor it sends the events after after_sequence, then new
    ones as they come, ends after ORDER_COMPLETED, answers OUT_OF_RANGE for a
    cursor beyond the last event and NOT_FOUND for a removed order. It records
    every WatchOrder request.
    """

    def __init__(self) -> None:
        self.events: dict[str, list[processor_pb.OrderEvent]] = {}
        #: Every WatchOrder request, in the order they arrived.
        self.watches: list[processor_pb.WatchOrderRequest] = []
        #: WatchOrder streams running now.
        self.open_streams = 0
        #: Serve every event from the first, whatever the cursor: a misbehaving processor.
        self.ignore_cursor = False
        #: Orders removed (expired): their watches answer NOT_FOUND.
        self.removed: set[str] = set()
        # Per order: how often its streams were cut, and the status of the last
        # cut (None: the stream just ends).
        self._cuts: dict[str, tuple[int, grpc.StatusCode | None]] = {}
        self._changed = asyncio.Event()

    # -- scripting -------------------------------------------------------------

    def propose(
        self, order: str, proposal_id: str, *, failed: bool = False, text: str = ""
    ) -> None:
        outcome = "Failed" if failed else "New"
        text = text or f"{proposal_id}/{outcome}"
        self._append(order, FAILED if failed else NEW, proposal_id, text)

    def remove(self, order: str) -> None:
        """Forget the order, as a retention sweep would: its streams answer NOT_FOUND."""
        self.removed.add(order)
        self._notify()

    def complete(self, order: str) -> None:
        self._append(order, COMPLETED, "", "OrderCompleted")

    def cut(self, order: str, code: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE) -> None:
        """End the order's open streams once they have sent what there is: with
        code, or cleanly (but before ORDER_COMPLETED) if code is None."""
        count, _ = self._cuts.get(order, (0, None))
        self._cuts[order] = (count + 1, code)
        self._notify()

    def watched(self, order: str) -> list[int]:
        """The after_sequence of each WatchOrder request for the order."""
        return [w.after_sequence for w in self.watches if w.order_req_id == order]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(POLL_DEADLINE_SECONDS):
            while not condition():
                await self._changed.wait()

    async def wait_watched(self, order: str, count: int) -> list[int]:
        await self.wait_for(lambda: len(self.watched(order)) >= count)
        return self.watched(order)

    # -- the service -------------------------------------------------------------

    async def WatchOrder(
        self, request: processor_pb.WatchOrderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[processor_pb.WatchOrderResponse]:
        order = request.order_req_id
        self.watches.append(request)
        self.open_streams += 1
        self._notify()
        try:
            events = self.events.setdefault(order, [])
            if order in self.removed:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"order {order!r} expired")
            if request.after_sequence > len(events):
                await context.abort(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"order {order!r} has no event {request.after_sequence}: "
                    f"its last is {len(events)}",
                )
            sent = 0 if self.ignore_cursor else request.after_sequence
            cuts_at_start, _ = self._cuts.get(order, (0, None))
            while True:
                while sent < len(events):
                    event = events[sent]
                    sent += 1
                    yield processor_pb.WatchOrderResponse(event=event)
                    if event.kind == COMPLETED:
                        return
                if order in self.removed:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"order {order!r} expired")
                cuts, code = self._cuts.get(order, (0, None))
                if cuts != cuts_at_start:
                    if code is None:
                        return
                    await context.abort(code, "the fake processor cut the stream")
                await self._changed.wait()
        finally:
            self.open_streams -= 1
            self._notify()

    # -- internals -------------------------------------------------------------

    def _append(self, order: str, kind: int, proposal_id: str, text: str) -> None:
        events = self.events.setdefault(order, [])
        created_at = Timestamp()
        created_at.GetCurrentTime()
        events.append(
            processor_pb.OrderEvent(
                order_req_id=order,
                sequence=len(events) + 1,
                kind=kind,
                proposal_id=proposal_id,
                created_at=created_at,
                text=text,
            )
        )
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class FakeProcessorServer:
    """A FakeProcessor served on one port, which can be stopped and started again."""

    def __init__(self) -> None:
        self.fake = FakeProcessor()
        self.port = 0
        self._server: RunningServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, *, lose_events: bool = False) -> None:
        """Serve on the port it had before (a free one the first time); with
        lose_events, from a fresh fake, as a restarted processor would."""
        if lose_events:
            self.fake = FakeProcessor()
        fake = self.fake
        binding = ServiceBinding(
            PROCESSOR_SERVICE_NAME,
            lambda server: processor_grpc.add_ProcessorServiceServicer_to_server(fake, server),
        )
        self._server = await start_server([binding], host="127.0.0.1", port=self.port)
        self.port = self._server.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None


@dataclasses.dataclass
class RequestorClient:
    """Calls to a requestor service, wherever it runs."""

    stub: pb_grpc.RequestorServiceStub

    async def place(self, order: str, **fields: object) -> pb.PlaceOrderResponse:
        return await self.stub.PlaceOrder(pb.PlaceOrderRequest(order_req_id=order, **fields))

    async def result(self, task_id: str) -> pb.TaskResult:
        return (await self.stub.GetTaskResult(pb.GetTaskResultRequest(task_id=task_id))).result

    async def wait_result(
        self, task_id: str, done: Callable[[pb.TaskResult], bool], what: str
    ) -> pb.TaskResult:
        return await poll(lambda: self.result(task_id), done, f"task {task_id} {what}")

    async def wait_final(self, task_id: str) -> pb.TaskResult:
        return await self.wait_result(task_id, lambda r: r.status in FINAL, "final")

    async def waiting_tasks(self) -> int:
        return (await self.stub.GetStats(pb.GetStatsRequest())).waiting_tasks

    async def stats(self) -> tuple[int, int, int, int]:
        stats = await self.stub.GetStats(pb.GetStatsRequest())
        return (
            stats.priority_queue_size,
            stats.active_tasks,
            stats.completed_tasks,
            stats.max_concurrent_tasks,
        )


@dataclasses.dataclass
class RequestorHarness(RequestorClient):
    requestor: Requestor
    health: health_pb2_grpc.HealthStub
    channel: grpc.aio.Channel

    async def health_status(self, service: str) -> int:
        answer = await self.health.Check(health_pb2.HealthCheckRequest(service=service))
        return answer.status


async def start_requestor_harness(
    started: list[RequestorHarness], processor_address: str, **overrides: object
) -> RequestorHarness:
    settings: dict[str, object] = {
        "port": 0,
        "store": "memory",
        "processor_address": processor_address,
        "reconnect_backoff_base": 0.001,
        "reconnect_backoff_cap": 0.01,
        "health_interval": 0.02,
    }
    config = RequestorConfig(**{**settings, **overrides})  # type: ignore[arg-type]
    requestor = await start_requestor(config)
    channel = grpc.aio.insecure_channel(requestor.server.address)
    harness = RequestorHarness(
        stub=pb_grpc.RequestorServiceStub(channel),
        requestor=requestor,
        health=health_pb2_grpc.HealthStub(channel),
        channel=channel,
    )
    started.append(harness)
    return harness


async def stop_requestor_harness(harness: RequestorHarness) -> None:
    await harness.channel.close()
    await harness.requestor.server.stop(None)
    await harness.requestor.drain()
