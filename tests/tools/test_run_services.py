"""tools/run_services.py, the `make run` supervisor, as a real process."""

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import health_probe

SUPERVISOR = Path(__file__).resolve().parents[2] / "tools" / "run_services.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUPERVISOR),
        "quote_svc",
        "processor_svc",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )


async def _read_until(process: asyncio.subprocess.Process, wanted: set[str]) -> list[str]:
    """Read prefixed log lines until every line in wanted (prefix + msg) was seen."""
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(30):
        while wanted - set(seen):
            line = (await process.stderr.readline()).decode()
            assert line, f"supervisor output ended; saw {seen}"
            name, _, record = line.partition(" ")
            if record.startswith("{"):
                seen.append(f"{name} {json.loads(record)['msg']}")
    return seen


async def test_one_interrupt_drains_every_service_and_exits_cleanly():
    quote_port, processor_port = _free_port(), _free_port()
    process = await _start(
        {
            "QUOTE_PORT": str(quote_port),
            "PROCESSOR_PORT": str(processor_port),
            "PROCESSOR_QUOTE_ADDRESS": f"127.0.0.1:{quote_port}",
            "PROCESSOR_HEALTH_INTERVAL": "0.05",
        }
    )
    try:
        await _read_until(process, {"[quote_svc] serving", "[processor_svc] serving"})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{processor_port}") as channel:
            ready = "quoteflow.processor.v1.ProcessorService"
            await health_probe.becomes(channel, ready, health_probe.SERVING)
        process.send_signal(signal.SIGINT)
        await _read_until(process, {"[quote_svc] drained", "[processor_svc] drained"})
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_service_that_dies_stops_the_others_and_fails():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        process = await _start(
            {"QUOTE_PORT": str(taken.getsockname()[1]), "PROCESSOR_PORT": str(_free_port())}
        )
        async with asyncio.timeout(30):
            _, err = await process.communicate()
        assert process.returncode == 1
        assert b"quote_svc exited on its own; stopping the others" in err
        assert b"[processor_svc]" in err and b'"drained"' in err
    finally:
        taken.close()
