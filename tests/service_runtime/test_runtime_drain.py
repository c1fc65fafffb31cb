"""Draining: new calls turned away with UNAVAILABLE, calls in flight finished,
health still answering."""

import asyncio

import grpc
import pytest
from support import health_probe
from support.rpc_errors import reason
from support.steady_load import SteadyLoad

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc


async def test_a_draining_server_refuses_new_calls_and_finishes_those_in_flight(
    server, servicer, stub, channel
):
    in_flight = stub.GetStats(quote_pb.GetStatsRequest())
    await servicer.stats_started.wait()
    server.refuse_new_calls()
    draining = asyncio.create_task(server.drain(grace=30))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetMessage(quote_pb.GetMessageRequest(id="m"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(refused.value) == "SHUTTING_DOWN"
    assert "nothing was accepted" in refused.value.details()
    # Probes still get an answer while the drain waits for the call in flight.
    assert await health_probe.check(channel, "") == health_probe.SERVING
    assert not draining.done()
    in_flight.cancel()
    await draining


async def test_readiness_cannot_come_back_once_draining(server, channel):
    name = "quoteflow.quote.v1.QuoteService"
    server.refuse_new_calls()
    await server.set_ready(False)
    # A downstream coming back mid-drain must not make the service ready again.
    await server.set_ready(True)
    assert await health_probe.check(channel, name) == health_probe.NOT_SERVING


async def test_under_steady_load_the_drain_ends_and_every_late_call_is_unavailable(server, channel):
    # The old drain waited for a pause in the refusals, and saw one only once
    # the callers had spent their budget.
    stub = quote_grpc.QuoteServiceStub(channel)
    load = SteadyLoad(
        lambda: stub.GetMessage(quote_pb.GetMessageRequest(id="m"), timeout=30),
        callers=8,
        budget=2_000,
    )
    await load.wait_answered(50)

    await server.drain(grace=600)

    assert await load.finish(), "the drain ended only once the callers stopped"
    assert load.codes["CANCELLED"] == 0, load.codes
    assert load.codes["UNAVAILABLE"] > 0
    assert set(load.codes) <= {"OK", "UNAVAILABLE"}
