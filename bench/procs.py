"""The processes the bench starts, and the guarantee that none outlives it.

Every child is started through Processes and killed when its block exits,
however it exits (an error, a timeout, Ctrl-C, SIGTERM). Children that are
Python modules of this package also ask the kernel to kill them should the
bench itself die without cleaning up (set_parent_death_signal), so not even a
SIGKILL of the bench leaves a server running.
"""

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

#: How long a child may take to start serving or to answer a line.
START_DEADLINE = 30.0
#: After SIGTERM, how long a child gets before SIGKILL.
STOP_GRACE = 5.0
_PR_SET_PDEATHSIG = 1


def set_parent_death_signal() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before the prctl took effect.
        if os.getppid() == 1:
            os._exit(1)


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def python_env(repo: Path) -> dict[str, str]:
    """The environment of a child: the repo root on PYTHONPATH, so that
    `--processor bench.noop_processor:price` imports in the service."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    return env


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    address: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def send(self, line: str) -> None:
        """Write one command line to the child's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def read_json(self, within: float = START_DEADLINE) -> dict[str, Any]:
        """The next JSON object the child prints on stdout; other lines are skipped."""
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            while line := await self.process.stdout.readline():
                with contextlib.suppress(json.JSONDecodeError):
                    answer = json.loads(line)
                    if isinstance(answer, dict):
                        return answer
        code = await self.process.wait()
        raise RuntimeError(f"{self.name} exited ({code}) without answering:\n{self.tail()}")

    async def stop(self, signum: int = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
        """Signal the child, give it grace seconds, then kill it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


class Processes:
    """Starts children with their output in log_dir; stops them all on exit."""

    def __init__(self, repo: Path, log_dir: Path) -> None:
        self._repo = repo
        self._log_dir = log_dir
        self._children: list[Child] = []
        self._count = 0

    async def __aenter__(self) -> "Processes":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    async def start(
        self, name: str, argv: Sequence[str], *, talk: bool = False, python: bool = True
    ) -> Child:
        """Start argv (after the interpreter, if python) with stderr in a log file;
        with talk, stdin and stdout are pipes for line commands and JSON answers."""
        self._count += 1
        log = self._log_dir / f"{self._count:03d}-{name}.log"
        command = [sys.executable, *argv] if python else list(argv)
        pipe = asyncio.subprocess.PIPE if talk else asyncio.subprocess.DEVNULL
        # A local file opened once per child: not worth a thread.
        with open(log, "wb") as log_file:  # noqa: ASYNC230
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self._repo,
                env=python_env(self._repo),
                stdin=pipe,
                stdout=pipe if talk else log_file,
                stderr=log_file,
                # Large JSON answers (latency samples) must fit a readline.
                limit=64 * 1024 * 1024,
            )
        child = Child(name, process, log)
        self._children.append(child)
        return child

    async def stop(
        self, child: Child, signum: int = signal.SIGTERM, grace: float = STOP_GRACE
    ) -> None:
        await child.stop(signum, grace)
        with contextlib.suppress(ValueError):
            self._children.remove(child)

    async def stop_all(self) -> None:
        children, self._children = self._children, []
        # Shielded: a cancelled bench must still reap what it started.
        await asyncio.shield(asyncio.gather(*(c.stop() for c in children)))


async def wait_serving(child: Child, address: str, deadline: float = START_DEADLINE) -> None:
    """Poll the gRPC liveness check at address until it answers SERVING."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if child.process.returncode is not None:
                raise RuntimeError(
                    f"{child.name} exited ({child.process.returncode}):\n{child.tail()}"
                )
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    child.address = address
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > end:
                raise RuntimeError(
                    f"{child.name} did not serve within {deadline:g}s:\n{child.tail()}"
                )
            await asyncio.sleep(0.05)
