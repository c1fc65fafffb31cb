"""SIGTERM under steady load, on a real quote service process: the drain ends
once the calls in flight are done, and the calls that arrive meanwhile are
answered UNAVAILABLE, never CANCELLED (which a client cannot tell from lost)."""

import asyncio
import itertools
import signal

import grpc
from support.service_process import running_service
from support.steady_load import SteadyLoad

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc

STEP_DEADLINE = 30.0


async def test_sigterm_under_steady_load_answers_late_calls_unavailable_never_cancelled():
    async with (
        running_service("quote_svc", "--store", "memory", "--grace-seconds", "600") as service,
        grpc.aio.insecure_channel(service.address) as first,
        grpc.aio.insecure_channel(service.address) as second,
    ):
        stubs = itertools.cycle(
            [quote_grpc.QuoteServiceStub(first), quote_grpc.QuoteServiceStub(second)]
        )
        load = SteadyLoad(
            lambda: next(stubs).GetStats(quote_pb.GetStatsRequest(), timeout=30),
            callers=8,
            # Far more calls than a drain that ends with its calls in flight
            # needs; the old drain, waiting for a pause in the refusals, outlasted them.
            budget=3_000,
        )
        await load.wait_answered(200)

        service.process.send_signal(signal.SIGTERM)

        async with asyncio.timeout(STEP_DEADLINE):
            assert await service.process.wait() == 0
        outlasted = await load.finish()
        await service.read_log_until("drained")

    assert outlasted, "the drain ended only once the callers stopped"
    assert load.codes["CANCELLED"] == 0, load.codes
    assert load.codes["UNAVAILABLE"] > 0
    assert set(load.codes) <= {"OK", "UNAVAILABLE"}, load.codes
    assert any(line.get("code") == "UNAVAILABLE" for line in service.log), (
        "no call reached the service while it drained"
    )
