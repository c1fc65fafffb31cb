"""The bridge: every call of the browser's protocols (Connect and gRPC-Web, as
connect-web speaks them) reaches the real services through their stubs, and
comes back as the service answered it, errors and their details included."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from connectrpc.client import ConnectClient
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from console.support import closed_address, console_argv
from google.rpc import error_details_pb2
from support.polling import poll
from support.service_process import Launched, launch, running_service

from console_svc.bridge import PROCESSOR, QUOTE, REQUESTOR, method_info
from console_svc.config import ConsoleConfig
from console_svc.drain import DRAINING_MESSAGE
from console_svc.service import RunningConsole, running
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_SIZE = 3
PROTOCOLS = [ProtocolType.CONNECT, ProtocolType.GRPC_WEB]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services() -> AsyncIterator[tuple[Launched, Launched, Launched]]:
    # No workers: what is submitted stays PENDING, so the tests choose when it ends.
    quote_args = ("--store", "memory", "--workers", "0", "--max-size", str(MAX_SIZE))
    async with (
        running_service("quote_svc", *quote_args) as quote,
        running_service(
            "processor_svc", "--store", "memory", "--quote-address", quote.address
        ) as processor,
        running_service(
            "requestor_svc", "--store", "memory", "--processor-address", processor.address
        ) as requestor,
    ):
        yield quote, processor, requestor


def config(quote: str, processor: str, requestor: str, **extra: Any) -> ConsoleConfig:
    return ConsoleConfig(
        port=0,
        quote_address=quote,
        processor_address=processor,
        requestor_address=requestor,
        **extra,
    )


@pytest_asyncio.fixture(loop_scope="module")
async def console(services) -> AsyncIterator[RunningConsole]:
    quote, processor, requestor = services
    async with running(config(quote.address, processor.address, requestor.address)) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="module")
async def quote_stub(services) -> AsyncIterator[quote_grpc.QuoteServiceStub]:
    async with grpc.aio.insecure_channel(services[0].address) as channel:
        yield quote_grpc.QuoteServiceStub(channel)


@contextlib.asynccontextmanager
async def client(address: str, protocol: ProtocolType) -> AsyncIterator[ConnectClient]:
    async with ConnectClient(
        f"http://{address}", codec=google_protobuf_binary_codec(), protocol=protocol
    ) as opened:
        yield opened


def method(service: Any, name: str) -> Any:
    return method_info(service.descriptor.methods_by_name[name])


def submission(name: str = "Ada Lovelace") -> quote_pb.Submission:
    return quote_pb.Submission(applicant_name=name, address="1 Bridge St", coverage_amount=250_000)


def unpacked(error: ConnectError) -> dict[str, Any]:
    """The google.rpc details of a Connect error, by type name, unpacked."""
    kinds = {
        "google.rpc.BadRequest": error_details_pb2.BadRequest,
        "google.rpc.RetryInfo": error_details_pb2.RetryInfo,
        "google.rpc.ErrorInfo": error_details_pb2.ErrorInfo,
    }
    return {d.type_name: kinds[d.type_name].FromString(d.message_bytes) for d in error.details}


async def test_every_rpc_of_the_three_services_is_bridged(console):
    endpoints = console.bridge.endpoints()
    for service in (QUOTE, PROCESSOR, REQUESTOR):
        for rpc in service.descriptor.methods:
            assert f"/{service.descriptor.full_name}/{rpc.name}" in endpoints
    assert len(endpoints) == sum(len(s.descriptor.methods) for s in (QUOTE, PROCESSOR, REQUESTOR))


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_unary_calls_reach_each_service(console, quote_stub, protocol):
    async with client(console.address, protocol) as bridge:
        stats = await bridge.execute_unary(
            request=quote_pb.GetStatsRequest(), method=method(QUOTE, "GetStats")
        )
        assert stats.max_size == MAX_SIZE
        submitted = await bridge.execute_unary(
            request=quote_pb.SubmitQuoteRequest(submission=submission()),
            method=method(QUOTE, "SubmitQuote"),
        )
        # The same message as the service itself holds.
        held = await quote_stub.GetMessage(quote_pb.GetMessageRequest(id=submitted.message.id))
        assert held.message.payload.applicant_name == "Ada Lovelace"
        await quote_stub.CancelMessage(quote_pb.CancelMessageRequest(id=submitted.message.id))

        placed = await bridge.execute_unary(
            request=requestor_pb.PlaceOrderRequest(order_req_id=f"bridge-{protocol.name}"),
            method=method(REQUESTOR, "PlaceOrder"),
        )
        assert placed.task_id
        processor_stats = await bridge.execute_unary(
            request=processor_pb.GetStatsRequest(), method=method(PROCESSOR, "GetStats")
        )
        assert processor_stats.awaited_orders_count >= 0


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_a_server_stream_brings_each_change_as_it_happens(console, quote_stub, protocol):
    queued = await quote_stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=submission()))
    message_id = queued.message.id
    async with client(console.address, protocol) as bridge:
        stream = bridge.execute_server_stream(
            request=quote_pb.WatchMessageRequest(id=message_id),
            method=method(QUOTE, "WatchMessage"),
        )
        seen = []
        async with asyncio.timeout(10):
            async for response in stream:
                seen.append(response.message.status)
                if len(seen) == 1:
                    # The first state has arrived through the bridge: now change it.
                    await quote_stub.CancelMessage(quote_pb.CancelMessageRequest(id=message_id))
    assert seen == [quote_pb.MESSAGE_STATUS_PENDING, quote_pb.MESSAGE_STATUS_CANCELLED]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_watch_order_streams_the_events_with_their_sequences(console, protocol):
    order = f"empty-order-{protocol.name}"
    async with client(console.address, protocol) as bridge:
        await bridge.execute_unary(
            request=processor_pb.CompleteOrderRequest(order_req_id=order),
            method=method(PROCESSOR, "CompleteOrder"),
        )
        events = [
            response.event
            async for response in bridge.execute_server_stream(
                request=processor_pb.WatchOrderRequest(order_req_id=order),
                method=method(PROCESSOR, "WatchOrder"),
            )
        ]
    assert [(e.sequence, e.kind) for e in events] == [
        (1, processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED)
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_field_violations_pass_through_with_their_details(console, quote_stub, protocol):
    bad = quote_pb.SubmitQuoteRequest(submission=quote_pb.Submission(coverage_amount=0))
    with pytest.raises(grpc.aio.AioRpcError) as direct:
        await quote_stub.SubmitQuote(bad)
    async with client(console.address, protocol) as bridge:
        with pytest.raises(ConnectError) as bridged:
            await bridge.execute_unary(request=bad, method=method(QUOTE, "SubmitQuote"))
    assert bridged.value.code == Code.INVALID_ARGUMENT
    assert bridged.value.message == direct.value.details()
    details = unpacked(bridged.value)
    violations = {v.field: v.description for v in details["google.rpc.BadRequest"].field_violations}
    assert set(violations) == {
        "submission.applicant_name",
        "submission.address",
        "submission.coverage_amount",
    }
    assert details["google.rpc.ErrorInfo"].domain == "quoteflow"


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.name)
async def test_a_full_queue_passes_its_retry_hint_through(console, quote_stub, protocol):
    stats = await quote_stub.GetStats(quote_pb.GetStatsRequest())
    fillers = []
    for n in range(MAX_SIZE - stats.pending_count):
        fillers.append(
            await quote_stub.SubmitQuote(
                quote_pb.SubmitQuoteRequest(submission=submission(f"Filler {n}"))
            )
        )
    try:
        async with client(console.address, protocol) as bridge:
            with pytest.raises(ConnectError) as full:
                await bridge.execute_unary(
                    request=quote_pb.SubmitQuoteRequest(submission=submission("One Too Many")),
                    method=method(QUOTE, "SubmitQuote"),
                )
        assert full.value.code == Code.RESOURCE_EXHAUSTED
        details = unpacked(full.value)
        assert details["google.rpc.RetryInfo"].retry_delay.ToTimedelta().total_seconds() > 0
        assert details["google.rpc.ErrorInfo"].reason == "QUEUE_FULL"
    finally:
        for filler in fillers:
            await quote_stub.CancelMessage(quote_pb.CancelMessageRequest(id=filler.message.id))


async def test_a_service_that_is_down_is_unavailable_and_named(services):
    _, processor, requestor = services
    dead = closed_address()
    async with (
        running(config(dead, processor.address, requestor.address)) as console,
        client(console.address, ProtocolType.CONNECT) as bridge,
    ):
        with pytest.raises(ConnectError) as down:
            await bridge.execute_unary(
                request=quote_pb.GetStatsRequest(), method=method(QUOTE, "GetStats")
            )
        with pytest.raises(ConnectError) as stream_down:
            async for _ in bridge.execute_server_stream(
                request=quote_pb.WatchMessageRequest(id="any"),
                method=method(QUOTE, "WatchMessage"),
            ):
                pass
        # The others are still reachable through the same console.
        answer = await bridge.execute_unary(
            request=requestor_pb.GetStatsRequest(), method=method(REQUESTOR, "GetStats")
        )
    for error in (down.value, stream_down.value):
        assert error.code == Code.UNAVAILABLE
        assert error.message.startswith(f"quote service unreachable at {dead}")
    assert answer.max_concurrent_tasks > 0


class _HeldQuote(quote_grpc.QuoteServiceServicer):
    """A quote service whose GetStats answers only when released, and whose
    WatchMessage sends one state and then nothing: calls a drain must wait for
    (the unary one) or end (the stream)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stats_called = asyncio.Event()

    async def GetStats(self, request, context):
        self.stats_called.set()
        await self.release.wait()
        return quote_pb.GetStatsResponse(workers=7)

    async def WatchMessage(self, request, context):
        yield quote_pb.WatchMessageResponse(message=quote_pb.QueueMessage(id=request.id))
        await asyncio.Event().wait()


async def test_a_drain_finishes_unary_calls_ends_streams_and_refuses_new_calls(services):
    _, processor, requestor = services
    held = _HeldQuote()
    server = grpc.aio.server()
    quote_grpc.add_QuoteServiceServicer_to_server(held, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            running(config(f"127.0.0.1:{port}", processor.address, requestor.address)) as console,
            client(console.address, ProtocolType.CONNECT) as bridge,
        ):
            stream = bridge.execute_server_stream(
                request=quote_pb.WatchMessageRequest(id="m1"), method=method(QUOTE, "WatchMessage")
            )
            first = await anext(stream)
            assert first.message.id == "m1"
            in_flight = asyncio.create_task(
                bridge.execute_unary(
                    request=quote_pb.GetStatsRequest(), method=method(QUOTE, "GetStats")
                )
            )
            await asyncio.wait_for(held.stats_called.wait(), 10)
            draining = asyncio.create_task(console.drain(grace=30))
            await poll(lambda: console.gate.draining, bool, "the drain begun")
            async with client(console.address, ProtocolType.CONNECT) as late:
                with pytest.raises(ConnectError) as refused:
                    await late.execute_unary(
                        request=requestor_pb.GetStatsRequest(),
                        method=method(REQUESTOR, "GetStats"),
                    )
            assert (refused.value.code, refused.value.message) == (
                Code.UNAVAILABLE,
                DRAINING_MESSAGE,
            )
            # The unary call in flight holds the drain until it finishes…
            assert not draining.done()
            assert console.gate.open_streams == 1
            held.release.set()
            assert (await asyncio.wait_for(in_flight, 10)).workers == 7
            # …then the open stream is ended, telling the page to reconnect.
            with pytest.raises(ConnectError) as ended:
                await asyncio.wait_for(anext(stream), 10)
            assert (ended.value.code, ended.value.message) == (Code.UNAVAILABLE, DRAINING_MESSAGE)
            await asyncio.wait_for(draining, 10)
    finally:
        await server.stop(None)


async def test_sigterm_drains_the_console_process(services):
    quote, processor, requestor = services
    console = await launch(
        console_argv(quote=quote.address, processor=processor.address, requestor=requestor.address),
        name="console_svc",
    )
    try:
        address = await console.serving()
        async with client(address, ProtocolType.CONNECT) as bridge:
            stats = await bridge.execute_unary(
                request=quote_pb.GetStatsRequest(), method=method(QUOTE, "GetStats")
            )
        assert stats.max_size == MAX_SIZE
        code = await console.stop(signal.SIGTERM, grace=20)
    finally:
        await console.stop(signal.SIGKILL)
    messages = [record.get("msg") for record in console.log]
    assert code == 0
    assert messages.index("draining") < messages.index("drained")
