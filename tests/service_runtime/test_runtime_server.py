"""start_server binds, serves health and reflection, and reports bind failures clearly."""

import asyncio
import signal
import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.polling import poll

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.server import (
    ServiceBinding,
    bind_server,
    serve_until_signalled,
    start_server,
)

QUOTE_SERVICE = quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def quote_binding(servicer) -> ServiceBinding:
    return ServiceBinding(
        QUOTE_SERVICE, lambda s: quote_grpc.add_QuoteServiceServicer_to_server(servicer, s)
    )


async def health_of(channel, service: str) -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    return response.status


async def test_port_zero_binds_a_real_port_that_answers(server, stub):
    assert server.port > 0
    assert server.address == f"127.0.0.1:{server.port}"
    response = await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))
    assert response.message.id == "m-1"


async def test_health_answers_serving_for_the_server_and_each_service(channel):
    assert await health_of(channel, "") == SERVING
    assert await health_of(channel, QUOTE_SERVICE) == SERVING


async def test_readiness_flips_only_the_services(server, channel):
    await server.set_ready(False)

    assert await health_of(channel, QUOTE_SERVICE) == NOT_SERVING
    assert await health_of(channel, "") == SERVING

    await server.set_ready(True)

    assert await health_of(channel, QUOTE_SERVICE) == SERVING


async def test_liveness_flips_only_the_server(server, channel):
    await server.set_alive(False)

    assert await health_of(channel, "") == NOT_SERVING
    assert await health_of(channel, QUOTE_SERVICE) == SERVING


async def test_health_watchers_see_readiness_change(server, channel):
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=QUOTE_SERVICE)
    )
    assert (await watch.read()).status == SERVING

    await server.set_ready(False)

    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()


async def test_reflection_lists_every_service(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def one_request():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    responses = [r async for r in reflection.ServerReflectionInfo(one_request())]

    listed = {s.name for s in responses[0].list_services_response.service}
    assert listed == {
        QUOTE_SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_binding_a_taken_port_raises_an_error_naming_the_address(server, servicer):
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        await start_server([quote_binding(servicer)], host="127.0.0.1", port=server.port)


async def test_a_port_held_by_another_socket_is_refused(servicer):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]

        with pytest.raises(OSError, match=f"127.0.0.1:{taken}"):
            await start_server([quote_binding(servicer)], host="127.0.0.1", port=taken)


async def test_a_bound_server_holds_its_port_before_it_starts_and_close_frees_it(servicer):
    bound = await bind_server(host="127.0.0.1", port=0)
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{bound.port}"):
            await bind_server(host="127.0.0.1", port=bound.port)
    finally:
        await bound.close()

    again = await bind_server(host="127.0.0.1", port=bound.port)
    running = await again.start([quote_binding(servicer)])
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            assert await health_of(channel, QUOTE_SERVICE) == SERVING
    finally:
        await running.stop(None)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this host")
async def test_an_ipv6_host_is_bracketed(servicer):
    running = await start_server([quote_binding(servicer)], host="::1", port=0)
    try:
        assert running.address == f"[::1]:{running.port}"
        async with grpc.aio.insecure_channel(running.address) as channel:
            assert await health_of(channel, QUOTE_SERVICE) == SERVING
    finally:
        await running.stop(None)


async def test_stop_reports_not_serving_to_calls_in_flight_and_refuses_new_ones(server, channel):
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == SERVING

    # The open watch is in flight, so the grace keeps the server draining
    # until the watch is cancelled below.
    stopping = asyncio.create_task(server.stop(30))

    assert (await watch.read()).status == NOT_SERVING
    # NOT_SERVING is announced before the listener closes: a call sent in
    # between may be cut as CANCELLED. A call made once it is closed is refused.
    await poll(lambda: _accepts(server.port), lambda accepts: not accepts, "the listener closed")
    async with grpc.aio.insecure_channel(server.address) as fresh:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health_of(fresh, "")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    watch.cancel()
    await stopping


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_stop_still_works_after_a_termination_wait_was_cancelled(server):
    waiting = asyncio.create_task(server.wait_for_termination())
    # One loop turn, so the waiter is parked on the server's shutdown future
    # before it is cancelled.
    await asyncio.sleep(0)
    waiting.cancel()

    await server.stop(None)

    assert waiting.cancelled()


async def test_serving_ends_when_the_server_stops_on_its_own(server):
    before = signal.getsignal(signal.SIGTERM)
    serving = asyncio.create_task(serve_until_signalled(server, grace=0))

    await server.stop(None)
    await serving

    assert signal.getsignal(signal.SIGTERM) == before
