"""tools/run_services.py, the `make run` supervisor, as a real process."""

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import pytest
from support import health_probe
from support.polling import poll
from support.service_process import run_to_exit

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


def _wired(ports: dict[str, int]) -> dict[str, str]:
    """The environment that puts each service on its port, calling the next."""
    return {
        "QUOTE_PORT": str(ports["quote_svc"]),
        "PROCESSOR_PORT": str(ports["processor_svc"]),
        "PROCESSOR_QUOTE_ADDRESS": f"127.0.0.1:{ports['quote_svc']}",
        "PROCESSOR_HEALTH_INTERVAL": "0.05",
        "REQUESTOR_PORT": str(ports["requestor_svc"]),
        "REQUESTOR_PROCESSOR_ADDRESS": f"127.0.0.1:{ports['processor_svc']}",
        "REQUESTOR_HEALTH_INTERVAL": "0.05",
    }


# SIGINT is Ctrl-C; SIGHUP is the terminal closing.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
async def test_one_interrupt_or_hangup_drains_every_service_and_exits_cleanly(tmp_path, signum):
    ports = {name: _free_port() for name in SERVICES}
    process = await _start(tmp_path, _wired(ports), *SERVICES)
    services: list[int] = []
    try:
        await _read_until(process, {f"[{name}] serving" for name in SERVICES})
        services = _children(process.pid)
        for name, ready in SERVICES.items():
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}") as channel:
                await health_probe.becomes(channel, ready, health_probe.SERVING)
                assert await health_probe.check(channel, "") == health_probe.SERVING
        process.send_signal(signum)
        await _read_until(process, {f"[{name}] drained" for name in SERVICES})
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        await _stop_all(process, services)


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
        # still be starting when it is stopped, before it logs anything: that
        # the supervisor waited for it to end is what can be relied on.
        assert b"[supervisor] quote_svc ended with exit code 1" in err
        assert b"[supervisor] processor_svc ended with exit code" in err
    finally:
        taken.close()


def _children(pid: int) -> list[int]:
    """The processes pid started, where /proc tells (Linux); else none."""
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listed.read_text().split()] if listed.exists() else []


async def _stop_all(supervisor: asyncio.subprocess.Process, services: list[int]) -> None:
    """Kill the supervisor and whichever of its services outlived it: a failing
    test leaves no process behind."""
    if supervisor.returncode is None:
        supervisor.kill()
        await supervisor.wait()
    for pid in services:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Whether pid has exited: no longer there, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As gRPC binds: connections of the old process in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads children from /proc")
async def test_the_services_stop_when_the_supervisor_is_killed(tmp_path):
    ports = {name: _free_port() for name in SERVICES}
    process = await _start(tmp_path, _wired(ports), *SERVICES)
    services: list[int] = []
    try:
        await _read_until(process, {f"[{name}] serving" for name in SERVICES})
        services = _children(process.pid)
        assert len(services) == len(SERVICES)

        process.kill()
        await process.wait()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not all(_gone(pid) for pid in services):
            assert loop.time() < deadline, "a service outlived its supervisor"
            await asyncio.sleep(0.05)
        assert all(_port_is_free(port) for port in ports.values())
    finally:
        await _stop_all(process, services)


# What make is to the supervisor: a parent that starts it, passes its output
# through, and waits. It prints the supervisor's pid for the test.
_PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, *sys.argv[1:]])
print(child.pid, flush=True)
child.wait()
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads children from /proc")
async def test_the_supervisor_and_its_services_stop_when_its_parent_is_killed(tmp_path):
    ports = {name: _free_port() for name in SERVICES}
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PARENT,
        str(SUPERVISOR),
        *SERVICES,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **_with_data_dir(tmp_path, _wired(ports))},
    )
    assert parent.stdout is not None
    supervisor = int(await parent.stdout.readline())
    services: list[int] = []
    try:
        await _read_until(parent, {f"[{name}] serving" for name in SERVICES})
        services = _children(supervisor)
        assert len(services) == len(SERVICES)

        parent.kill()  # as `kill -9` on make: nothing reaches the supervisor
        await parent.wait()

        await poll(
            lambda: [pid for pid in [supervisor, *services] if not _gone(pid)],
            _none,
            "the processes",
        )
        assert all(_port_is_free(port) for port in ports.values())
    finally:
        for pid in [supervisor, *services]:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _none(running: list[int]) -> bool:
    return not running


async def test_a_second_make_run_on_the_same_data_dir_fails_and_leaves_the_first_serving(
    tmp_path,
):
    ports = {name: _free_port() for name in SERVICES}
    process = await _start(tmp_path, _wired(ports), *SERVICES)
    services: list[int] = []
    try:
        await _read_until(process, {f"[{name}] serving" for name in SERVICES})
        services = _children(process.pid)

        second = await run_to_exit(
            sys.executable, str(SUPERVISOR), *SERVICES, **_with_data_dir(tmp_path, _wired(ports))
        )

        assert second.returncode == 1
        # The first service to fail stops the others, which may not have got
        # as far as saying so: one refusal, and nothing served, is what is sure.
        assert b"is in use by pid" in second.stderr
        assert b'"serving"' not in second.stderr
        for name in SERVICES:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}") as channel:
                assert await health_probe.check(channel, "") == health_probe.SERVING
    finally:
        await _stop_all(process, services)
