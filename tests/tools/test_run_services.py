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
from service_process import run_to_exit

SERVICES = {
    "quote_svc": "quoteflow.quote.v1.QuoteService",
    "processor_svc": "quoteflow.processor.v1.ProcessorService",
    "requestor_svc": "quoteflow.requestor.v1.RequestorService",
}
PREFIXES = ("QUOTE", "PROCESSOR", "REQUESTOR")
SUPERVISOR = Path(__file__).resolve().parents[2] / "tools" / "run_services.py"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _start(data_dir: Path, env: dict[str, str], *modules: str) -> asyncio.subprocess.Process:
    """The supervisor running modules (default: the quote and processor services),
    each keeping its database in data_dir."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUPERVISOR),
        *(modules or ("quote_svc", "processor_svc")),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **_with_data_dir(data_dir, env)},
    )


def _with_data_dir(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    return {f"{prefix}_DATA_DIR": str(data_dir) for prefix in PREFIXES} | env


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


async def test_one_interrupt_drains_every_service_and_exits_cleanly(tmp_path):
    ports = {name: _free_port() for name in SERVICES}
    process = await _start(
        tmp_path,
        {
            "QUOTE_PORT": str(ports["quote_svc"]),
            "PROCESSOR_PORT": str(ports["processor_svc"]),
            "PROCESSOR_QUOTE_ADDRESS": f"127.0.0.1:{ports['quote_svc']}",
            "PROCESSOR_HEALTH_INTERVAL": "0.05",
            "REQUESTOR_PORT": str(ports["requestor_svc"]),
            "REQUESTOR_PROCESSOR_ADDRESS": f"127.0.0.1:{ports['processor_svc']}",
            "REQUESTOR_HEALTH_INTERVAL": "0.05",
        },
        *SERVICES,
    )
    try:
        await _read_until(process, {f"[{name}] serving" for name in SERVICES})
        for name, ready in SERVICES.items():
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}") as channel:
                await health_probe.becomes(channel, ready, health_probe.SERVING)
                assert await health_probe.check(channel, "") == health_probe.SERVING
        process.send_signal(signal.SIGINT)
        await _read_until(process, {f"[{name}] drained" for name in SERVICES})
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_service_that_dies_stops_the_others_and_fails(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        env = {"QUOTE_PORT": str(taken.getsockname()[1]), "PROCESSOR_PORT": str(_free_port())}
        finished = await run_to_exit(
            sys.executable,
            str(SUPERVISOR),
            "quote_svc",
            "processor_svc",
            **_with_data_dir(tmp_path, env),
        )
        assert finished.returncode == 1
        err = finished.stderr
        assert b"quote_svc exited on its own; stopping the others" in err
        # The quote service fails at once, on its port, so the processor may
        # still be starting when it is stopped: that it ran and the supervisor
        # waited for it is what can be relied on.
        assert b"[processor_svc]" in err
    finally:
        taken.close()
