"""python -m quote_svc as a real process: it serves, prices, and drains on SIGTERM."""

import signal
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.quote_harness import submission
from support.service_process import run_to_exit, running_service

from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc


async def test_the_process_serves_then_drains_on_sigterm() -> None:
    async with running_service("quote_svc", "--workers", "2") as service:
        async with grpc.aio.insecure_channel(service.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", "quoteflow.quote.v1.QuoteService"):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.QuoteServiceStub(channel)
            sent = await stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission()))
            watch = stub.WatchMessage(pb.WatchMessageRequest(id=sent.message.id))
            states = [r.message.status async for r in watch]
            assert states[-1] == pb.MESSAGE_STATUS_COMPLETED
            stats = await stub.GetStats(pb.GetStatsRequest())
            assert (stats.completed_count, stats.workers) == (1, 2)
        assert await service.stop(signal.SIGTERM) == 0
        await service.read_log_until("drained")
        rpc_lines = [r for r in service.log if r.get("msg") == "rpc"]
        methods = {r["method"] for r in rpc_lines}
        assert "/quoteflow.quote.v1.QuoteService/SubmitQuote" in methods
        # Health checks are logged at DEBUG, below the default INFO.
        assert "/grpc.health.v1.Health/Check" not in methods
        assert all("duration_ms" in r and "code" in r for r in rpc_lines)


async def test_a_bad_setting_is_refused_before_serving() -> None:
    finished = await run_to_exit(
        sys.executable,
        "-m",
        "quote_svc",
        "--workers",
        "0",
    )
    assert finished.returncode == 2
    assert b"workers must be at least 1" in finished.stderr
