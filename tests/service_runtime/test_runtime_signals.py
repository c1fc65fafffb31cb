"""serve_until_signalled, in a real process: drain on SIGTERM/SIGINT, cut short on a second."""

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc

SCRIPT = Path(__file__).with_name("drain_server.py")
QUOTE_SERVICE = quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name
# How long any one step of the child process may take: generous, because it
# only bounds a failure, and short of the 600 s grace the cut-short test uses.
STEP_DEADLINE = 30.0


class DrainServer:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def expect_line(self, expected: str) -> str:
        line = await asyncio.wait_for(self.process.stdout.readline(), STEP_DEADLINE)
        text = line.decode().strip()
        assert text.startswith(expected), f"expected {expected!r}, got {text!r}"
        return text

    async def release_call(self) -> None:
        self.process.stdin.write(b"release\n")
        await self.process.stdin.drain()

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), STEP_DEADLINE)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@contextlib.asynccontextmanager
async def drain_server(tmp_path: Path, grace: float) -> AsyncIterator[tuple[DrainServer, str]]:
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            str(grace),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    server = DrainServer(process, log)
    try:
        port = (await server.expect_line("port ")).split()[1]
        yield server, f"127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def start_in_flight_call(server: DrainServer, stub) -> grpc.aio.UnaryUnaryCall:
    call = stub.GetStats(quote_pb2.GetStatsRequest())
    await server.expect_line("in flight")
    return call


async def watch_readiness(channel):
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=QUOTE_SERVICE)
    )
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    return watch


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_signal_drains_in_flight_calls_and_exits_cleanly(tmp_path, signum):
    async with (
        drain_server(tmp_path, grace=600) as (server, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = quote_grpc.QuoteServiceStub(channel)
        watch = await watch_readiness(channel)
        in_flight = await start_in_flight_call(server, stub)

        server.process.send_signal(signum)

        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The open watch is a call in flight too; cancel it so only the held
        # call keeps the drain waiting.
        watch.cancel()
        await server.release_call()
        assert (await in_flight).workers == 7
        await server.expect_line("drained")
        assert await server.exit_code() == 0

    draining = [line for line in server.log_lines() if line["msg"] == "draining"]
    assert [line["signal"] for line in draining] == [signum.name]


async def test_a_second_signal_cuts_the_grace_period_short(tmp_path):
    async with (
        drain_server(tmp_path, grace=600) as (server, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = quote_grpc.QuoteServiceStub(channel)
        watch = await watch_readiness(channel)
        in_flight = await start_in_flight_call(server, stub)
        server.process.send_signal(signal.SIGTERM)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING

        server.process.send_signal(signal.SIGTERM)

        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await in_flight
        assert cut.value.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
        await server.expect_line("drained")
        assert await server.exit_code() == 0

    assert any(line["msg"].startswith("second signal") for line in server.log_lines())
