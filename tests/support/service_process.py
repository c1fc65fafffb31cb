"""Running a service as a real process (`python -m <module>`), as `make run` does."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

# A process that has not said it is serving by then is treated as failed to start.
START_DEADLINE_SECONDS = 30.0


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    address: str = ""
    #: Every JSON log line the process wrote to stderr so far.
    log: list[dict[str, object]] = field(default_factory=list)
    # One reader drains stderr for the process's whole life: a pipe nobody
    # reads fills up, and then the service blocks on its next log line.
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: bool = False
    _cursor: int = 0

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        try:
            while line := await self.process.stderr.readline():
                try:
                    self.log.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
                self._changed.set()
        finally:
            self._ended = True
            self._changed.set()

    async def read_log_until(self, msg: str) -> dict[str, object]:
        """The next log record (after the last one this returned) whose "msg" is
        msg, waiting for it; fail if the process ends without logging it."""
        async with asyncio.timeout(START_DEADLINE_SECONDS):
            while True:
                for index in range(self._cursor, len(self.log)):
                    if self.log[index].get("msg") == msg:
                        self._cursor = index + 1
                        return self.log[index]
                self._cursor = len(self.log)
                if self._ended:
                    raise AssertionError(f"process ended without logging {msg!r}; log: {self.log}")
                self._changed.clear()
                await self._changed.wait()

    async def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        async with asyncio.timeout(START_DEADLINE_SECONDS):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def running_service(
    module: str, *args: str, data_dir: Path | None = None, port: int = 0, **env: str
) -> AsyncIterator[ServiceProcess]:
    """Start `python -m module --port P --data-dir D args…`, wait until it serves,
    kill it afterwards. P is 0 (a free port) unless given, as to restart a service
    where its clients expect it; D is a fresh temporary directory unless data_dir
    is given."""
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *args,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
        )
        service = ServiceProcess(process)
        service.start_reading()
        try:
            serving = await service.read_log_until("serving")
            service.address = str(serving["address"])
            yield service
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if service._reader is not None:
                await service._reader


@dataclass
class Finished:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run_to_exit(
    *argv: str,
    cwd: Path | None = None,
    deadline: float = START_DEADLINE_SECONDS * 4,
    **env: str,
) -> Finished:
    """Run argv (a command expected to end by itself) and return how it ended.
    Killed if it runs past `deadline` seconds, or if the test is cancelled: a
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
