"""Fixtures: the CLI run in-process (quoteflow_cli.app.run) against services started
in-process on port 0, each run with its own captured stdout and stderr."""

import asyncio
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.processor_harness import ProcessorHarness, processor_harness
from support.quote_harness import QuoteHarness, StartQuote
from support.requestor_harness import (
    RequestorHarness,
    start_requestor_harness,
    stop_requestor_harness,
)

from quoteflow_cli.app import run

# Longest a test waits for output it expects before it fails.
WAIT_SECONDS = 10.0


class Capture(io.StringIO):
    """A stream the CLI writes to, which a test can wait on."""

    def __init__(self) -> None:
        super().__init__()
        self._written = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        self._written.set()
        return written

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()

    async def wait_for_lines(self, count: int) -> list[str]:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.lines()) < count:
                self._written.clear()
                await self._written.wait()
        return self.lines()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    def error(self) -> Any:
        """The JSON error object of a --json run."""
        return json.loads(self.stderr)["error"]


@dataclass
class Running:
    """A CLI command running in the background, e.g. a watch."""

    task: asyncio.Task[int]
    stdout: Capture
    stderr: Capture

    async def result(self) -> Result:
        async with asyncio.timeout(WAIT_SECONDS):
            code = await self.task
        return Result(code, self.stdout.getvalue(), self.stderr.getvalue())


class Cli:
    """`quoteflow --quote … --processor … --requestor … ARGS`, run in-process."""

    def __init__(self, **addresses: str) -> None:
        self.addresses = addresses

    def argv(self, args: tuple[str, ...]) -> list[str]:
        options = [f"--{name}={address}" for name, address in self.addresses.items()]
        return [*options, *args]

    def start(self, *args: str) -> Running:
        stdout, stderr = Capture(), Capture()
        task = asyncio.create_task(run(self.argv(args), stdout=stdout, stderr=stderr))
        return Running(task, stdout, stderr)

    async def __call__(self, *args: str) -> Result:
        return await self.start(*args).result()


@pytest.fixture
def cli_at() -> type[Cli]:
    """Cli(quote=…, processor=…, requestor=…): the CLI pointed at those addresses."""
    return Cli


@pytest.fixture
def dead_address() -> Iterator[str]:
    """An address nobody listens on: a port held bound but not listening, so a
    connection is refused at once (and no other test can take the port meanwhile)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture
async def quote(start_quote: StartQuote) -> QuoteHarness:
    return await start_quote(workers=1, max_retries=0)


@pytest.fixture
def cli(quote: QuoteHarness, dead_address: str) -> Cli:
    """The CLI pointed at the quote service; the others are nowhere."""
    return Cli(quote=quote.server.address, processor=dead_address, requestor=dead_address)


@pytest.fixture
async def processor(quote: QuoteHarness) -> AsyncIterator[ProcessorHarness]:
    async with processor_harness(quote.server.address) as harness:
        yield harness


@pytest.fixture
async def requestor(processor: ProcessorHarness) -> AsyncIterator[RequestorHarness]:
    started: list[RequestorHarness] = []
    yield await start_requestor_harness(started, processor.processor.server.address)
    for harness in started:
        await stop_requestor_harness(harness)


@pytest.fixture
def order_cli(quote: QuoteHarness, processor: ProcessorHarness, requestor: RequestorHarness) -> Cli:
    """The CLI pointed at all three services."""
    return Cli(
        quote=quote.server.address,
        processor=processor.processor.server.address,
        requestor=requestor.requestor.server.address,
    )


class Answered:
    """Whether a service in this process has answered a call of some method with some code."""

    def __init__(self, method: str, code: str) -> None:
        self.method = method
        self.code = code
        self.event = asyncio.Event()

    async def wait(self) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            await self.event.wait()


@pytest.fixture
def rpc_answers(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[str, str], Answered]]:
    """rpc_answers(method, code): set once a service in this process answers a call
    of method (e.g. "SubmitQuote") with code (e.g. "RESOURCE_EXHAUSTED"), as the one
    log line every RPC gets says."""
    caplog.set_level(logging.INFO, logger="service_runtime.rpc")
    rpc_logger = logging.getLogger("service_runtime.rpc")
    watched: list[Answered] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = getattr(record, "fields", {})
            method, code = str(fields.get("method", "")), fields.get("code")
            for answered in watched:
                if method.endswith(f"/{answered.method}") and code == answered.code:
                    answered.event.set()

    def answered(method: str, code: str) -> Answered:
        watched.append(Answered(method, code))
        return watched[-1]

    spy = Spy()
    rpc_logger.addHandler(spy)
    yield answered
    rpc_logger.removeHandler(spy)
