"""Starting real processes, services above all, and stopping them: the one
launcher of the tests (tests/support), the tools (durability_check) and the
bench (bench/procs). Plain asyncio and grpc: it imports without pytest.

A launched process's stderr goes one of two ways. Piped, it is read line by line
for as long as the process runs (a pipe nobody reads fills up, and the service
then blocks on its next log line): every line is kept, each JSON log record
also in `log`, so that a caller can wait for a record. To a file, it costs the
launching process nothing, which the bench needs while it measures.

A service is ready when it logs "serving" (its address is in the record) or,
when its stderr goes to a file, when its gRPC health check answers SERVING at
the address it was told to listen on. Stopping is a signal (SIGTERM unless
told), a grace period, then SIGKILL.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
#: How long a process may take to serve or to log what is awaited.
START_DEADLINE = 30.0
#: After the stop signal, how long a process gets before SIGKILL.
STOP_GRACE = 30.0
#: The longest line a child may write: a bench child's JSON answer (latency
#: samples) must fit one readline.
LINE_LIMIT = 64 * 1024 * 1024


class LaunchError(RuntimeError):
    """A process ended, or missed its deadline, before doing what it was awaited for."""


def python_env(*path: Path | str, **env: str) -> dict[str, str]:
    """This process's environment updated with env, with path and then the repo
    root ahead on PYTHONPATH, so that `--processor tools.durability_check:paced`
    or `bench.noop_processor:price` imports in the child."""
    merged = {**os.environ, **env}
    entries = [*map(str, path), str(REPO), merged.get("PYTHONPATH", "")]
    merged["PYTHONPATH"] = os.pathsep.join(entry for entry in entries if entry)
    return merged


@dataclass
class Launched:
    """A started process and what it wrote on stderr."""

    name: str
    process: asyncio.subprocess.Process
    #: Where stderr goes when it is not read here.
    log_file: Path | None = None
    #: host:port, once it serves.
    address: str = ""
    #: Every line written to stderr so far (piped stderr only).
    lines: list[str] = field(default_factory=list)
    #: The lines that are JSON log records, parsed.
    log: list[dict[str, object]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = field(default=None, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _ended: bool = field(default=False, repr=False)
    _cursor: int = field(default=0, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        try:
            while raw := await self.process.stderr.readline():
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        self.log.append(record)
                self._changed.set()
        finally:
            self._ended = True
            self._changed.set()

    def tail(self, count: int = 20) -> str:
        """The last count lines of stderr, to say why a process failed."""
        if self.log_file is None:
            return "\n".join(self.lines[-count:])
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-count:])
        except OSError:
            return ""

    async def send(self, line: str) -> None:
        """Write one command line to stdin (launched with talk)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def read_json(self, within: float = START_DEADLINE) -> dict[str, Any]:
        """The next JSON object printed on stdout (launched with talk); other
        lines are skipped."""
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            while line := await self.process.stdout.readline():
                with contextlib.suppress(json.JSONDecodeError):
                    answer = json.loads(line)
                    if isinstance(answer, dict):
                        return answer
        code = await self.process.wait()
        raise LaunchError(f"{self.name} exited ({code}) without answering:\n{self.tail()}")

    async def read_log_until(self, msg: str, deadline: float = START_DEADLINE) -> dict[str, object]:
        """The next log record (after the last one this returned) whose "msg" is
        msg, waiting for it; LaunchError if the process ends without logging it."""
        if self._reader is None:
            raise LaunchError(f"{self.name}'s stderr is not read here: it goes to {self.log_file}")
        try:
            async with asyncio.timeout(deadline):
                while True:
                    for index in range(self._cursor, len(self.log)):
                        if self.log[index].get("msg") == msg:
                            self._cursor = index + 1
                            return self.log[index]
                    self._cursor = len(self.log)
                    if self._ended:
                        raise LaunchError(
                            f"{self.name} ended without logging {msg!r}:\n{self.tail()}"
                        )
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise LaunchError(
                f"{self.name} did not log {msg!r} within {deadline:g} s:\n{self.tail()}"
            ) from None

    async def serving(self, address: str | None = None, deadline: float = START_DEADLINE) -> str:
        """Wait until the process serves and return its address: the one its
        "serving" record names or, given an address, the one whose health check
        answers SERVING there."""
        if address is None:
            self.address = str((await self.read_log_until("serving", deadline))["address"])
        else:
            await self._health_serving(address, deadline)
            self.address = address
        return self.address

    async def _health_serving(self, address: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.process.returncode is not None:
                    raise LaunchError(
                        f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                    )
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if loop.time() > end:
                    raise LaunchError(
                        f"{self.name} did not serve within {deadline:g} s:\n{self.tail()}"
                    )
                await asyncio.sleep(0.05)

    async def stop(self, signum: int = signal.SIGTERM, grace: float = STOP_GRACE) -> int:
        """Send signum (unless the process has ended), give it grace seconds,
        then SIGKILL it; its exit code, once its stderr is read to the end."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        code = await self.process.wait()
        if self._reader is not None:
            await self._reader
        return code


async def launch(
    argv: Sequence[str],
    *,
    name: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_file: Path | None = None,
    talk: bool = False,
) -> Launched:
    """Start argv in cwd with env (python_env() unless given). Its stderr is read
    here, unless log_file takes it. With talk, stdin and stdout are pipes (line
    commands in, JSON answers out); else stdin is empty and stdout goes to
    log_file, or where this process's goes."""
    pipe = asyncio.subprocess.PIPE
    with contextlib.ExitStack() as stack:
        # A local file opened once per child: not worth a thread.
        sink = None if log_file is None else stack.enter_context(open(log_file, "wb"))  # noqa: ASYNC230
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=python_env() if env is None else env,
            stdin=pipe if talk else asyncio.subprocess.DEVNULL,
            stdout=pipe if talk else sink,
            stderr=pipe if sink is None else sink,
            limit=LINE_LIMIT,
        )
    launched = Launched(name or Path(argv[0]).name, process, log_file)
    if log_file is None:
        launched._start_reading()
    return launched


def service_argv(module: str, *args: str, port: int = 0, data_dir: Path) -> list[str]:
    """`python -m module --port P --data-dir D args…`, as `make run` starts a service."""
    return [
        sys.executable,
        "-m",
        module,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *args,
    ]


@contextlib.asynccontextmanager
async def running_service(
    module: str, *args: str, data_dir: Path | None = None, port: int = 0, **env: str
) -> AsyncIterator[Launched]:
    """Start `python -m module --port P --data-dir D args…`, wait until it serves,
    kill it afterwards. P is 0 (a free port) unless given, as to restart a service
    where its clients expect it; D is a fresh temporary directory unless data_dir
    is given; env is added to the child's environment (python_env)."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        argv = service_argv(module, *args, port=port, data_dir=data_dir)
        service = await launch(argv, name=module, env=python_env(**env))
        try:
            await service.serving()
            yield service
        finally:
            await service.stop(signal.SIGKILL)


@dataclass
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run_to_exit(
    *argv: str,
    cwd: Path | None = None,
    deadline: float = START_DEADLINE * 4,
    **env: str,
) -> Finished:
    """Run argv (a command expected to end by itself) and return how it ended.
    Killed if it runs past `deadline` seconds, or if the caller is cancelled: a
    failing test never leaves a process behind."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(deadline):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Finished(process.returncode, out, err)
