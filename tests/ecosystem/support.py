"""Calling the services from outside Python: the three services as real processes (as
`make run` starts them), and buf curl from node_modules. conftest.py makes fixtures of
these; tests import the rest as `ecosystem.support` (tests/ is on the path)."""

import asyncio
import base64
import codecs
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from support.service_process import Launched, run_to_exit, running_service

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

#: The longest any one buf curl (or node) run may take before the test fails and the
#: process is killed; well inside pytest-timeout's 60 s, so the failure names the call.
CALL_DEADLINE_SECONDS = 20.0
#: buf curl's own deadline (--timeout): shorter, so a hung call usually ends as buf's
#: deadline_exceeded, with what buf saw, before the test kills it.
BUF_TIMEOUT = "15s"


@dataclass(frozen=True)
class Services:
    """Where the three running services listen (host:port)."""

    quote: str
    processor: str
    requestor: str
    #: Every service process, for its log on a failure.
    processes: tuple[Launched, ...] = field(repr=False)


@contextlib.asynccontextmanager
async def start_service(module: str, *args: str, data_dir: Path, **env: str):
    """running_service (which reads the service's log for as long as it runs)."""
    async with running_service(module, *args, data_dir=data_dir, **env) as service:
        yield service


@contextlib.asynccontextmanager
async def three_services(data_dir: Path, *quote_args: str) -> AsyncIterator[Services]:
    """Quote, then processor (pointed at it), then requestor (pointed at the processor),
    each a `python -m` process on a free port with its database under data_dir."""
    async with contextlib.AsyncExitStack() as stack:
        quote = await stack.enter_async_context(
            start_service(
                "quote_svc", *quote_args, data_dir=data_dir / "quote", PYTHONPATH=str(TESTS)
            )
        )
        processor = await stack.enter_async_context(
            start_service(
                "processor_svc",
                "--quote-address",
                quote.address,
                "--health-interval",
                "0.05",
                data_dir=data_dir / "processor",
            )
        )
        requestor = await stack.enter_async_context(
            start_service(
                "requestor_svc",
                "--processor-address",
                processor.address,
                "--health-interval",
                "0.05",
                data_dir=data_dir / "requestor",
            )
        )
        yield Services(
            quote.address, processor.address, requestor.address, (quote, processor, requestor)
        )


async def closed_address() -> str:
    """A local host:port where nothing listens (it did a moment ago)."""
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"127.0.0.1:{port}"


# --- buf curl -----------------------------------------------------------------------


def buf_executable() -> str:
    """The buf binary `npm ci` installed. npx runs the same binary through a node shim,
    which costs ~0.5 s a call; the platform package's binary starts in ~0.05 s."""
    native = sorted(REPO.glob("node_modules/@bufbuild/buf-*/bin/buf"))
    if len(native) == 1:
        return str(native[0])
    shim = REPO / "node_modules" / ".bin" / "buf"
    if not shim.exists():
        pytest.fail("buf is not installed: run `npm ci` (make test does)")
    return str(shim)


@dataclass
class BufAnswer:
    """How one buf curl run ended: exit code, the JSON documents it printed on stdout
    (one per response message) and its stderr."""

    argv: list[str]
    returncode: int
    messages: list[dict]
    stderr: str

    def __str__(self) -> str:
        return f"{' '.join(self.argv)}\nexit {self.returncode}\n{self.messages}\n{self.stderr}"

    @property
    def message(self) -> dict:
        """The one response of a successful unary call."""
        assert self.returncode == 0, str(self)
        assert len(self.messages) == 1, str(self)
        return self.messages[0]

    @property
    def error(self) -> dict:
        """The status of a failed call: buf curl exits with the gRPC code shifted left
        three bits and prints {"code", "message", "details"} on stderr."""
        assert self.returncode >= 8, str(self)
        assert not self.messages, str(self)
        error = json.loads(self.stderr)
        assert self.returncode == 8 * GRPC_CODES[error["code"]], str(self)
        return error


#: The gRPC codes by the names buf curl prints: Connect's, lower snake case, and
#: "canceled" with one l.
GRPC_CODES = {
    code.name.lower().replace("cancelled", "canceled"): code.value[0] for code in grpc.StatusCode
}


def decoded_details(error: dict) -> dict[str, object]:
    """The status details buf curl printed, decoded: {"google.rpc.ErrorInfo": ErrorInfo…}.

    buf curl prints each detail as its type name and the message's bytes in unpadded
    base64; it decodes none of them itself (see docs/calling.md)."""
    pool = error_details_pb2.DESCRIPTOR.pool
    decoded: dict[str, object] = {}
    for detail in error.get("details", []):
        value = detail["value"]
        raw = base64.b64decode(value + "=" * (-len(value) % 4))
        message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(detail["type"]))
        decoded[detail["type"]] = message_class.FromString(raw)
    return decoded


def json_documents(text: str) -> tuple[list[dict], str]:
    """Split buf curl's output (pretty-printed JSON documents one after another) into
    the complete documents and what is left of an incomplete last one."""
    decoder = json.JSONDecoder()
    documents = []
    rest = text.lstrip()
    while rest:
        try:
            document, end = decoder.raw_decode(rest)
        except json.JSONDecodeError:
            break
        documents.append(document)
        rest = rest[end:].lstrip()
    return documents, rest


class BufStream:
    """A running buf curl of a server-streaming method, read response by response."""

    def __init__(self, argv: list[str], process: asyncio.subprocess.Process) -> None:
        self.argv = argv
        self.process = process
        self.received: list[dict] = []
        self._ready: list[dict] = []
        self._partial = ""
        # A chunk may end inside a multi-byte character.
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    async def next(self, what: str = "another response") -> dict:
        """The next response; fails if the stream ends first."""
        assert self.process.stdout is not None
        async with asyncio.timeout(CALL_DEADLINE_SECONDS):
            while not self._ready:
                chunk = await self.process.stdout.read(65536)
                if not chunk:
                    raise AssertionError(
                        f"stream ended before {what}, after {self.received}; exit "
                        f"{await self.process.wait()}: {await self._stderr()}"
                    )
                text = self._partial + self._decoder.decode(chunk)
                documents, self._partial = json_documents(text)
                self._ready.extend(documents)
        response = self._ready.pop(0)
        self.received.append(response)
        return response

    async def until(self, predicate, what: str) -> dict:
        """Read responses until one satisfies predicate (what, in words)."""
        while True:
            response = await self.next(what)
            if predicate(response):
                return response

    async def finish(self) -> BufAnswer:
        """Wait for the stream to end by itself; every response it sent is in .received."""
        assert self.process.stdout is not None
        async with asyncio.timeout(CALL_DEADLINE_SECONDS):
            rest = await self.process.stdout.read()
            returncode = await self.process.wait()
            stderr = await self._stderr()
        text = self._partial + self._decoder.decode(rest, final=True)
        documents, partial = json_documents(text)
        assert not partial, partial
        self.received.extend(self._ready + documents)
        self._ready = []
        return BufAnswer(self.argv, returncode, list(self.received), stderr)

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


class BufCurl:
    """`buf curl --protocol grpc --http2-prior-knowledge` against the services, schema by
    server reflection, as docs/calling.md shows it."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def base(self) -> list[str]:
        """buf curl and the flags every call here has; the bufcurl of docs/calling.md, less npx."""
        return [
            self.executable,
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--timeout",
            BUF_TIMEOUT,
        ]

    def argv(self, address: str, method: str, body: object = None, *flags: str) -> list[str]:
        data = [] if body is None else ["-d", body if isinstance(body, str) else json.dumps(body)]
        url = f"http://{address}/{method}" if method else f"http://{address}"
        return [*self.base(), *flags, *data, url]

    async def __call__(
        self, address: str, method: str, body: object = None, *flags: str
    ) -> BufAnswer:
        """Run one call to its end: method is "package.Service/Method" ("" with --list-*)."""
        return await self.run(self.argv(address, method, body, *flags))

    async def run(self, argv: list[str]) -> BufAnswer:
        finished = await run_killed_on_failure(argv)
        documents, partial = json_documents(finished.stdout)
        assert not partial, f"{argv}: not JSON: {partial!r}"
        return BufAnswer(argv, finished.returncode, documents, finished.stderr)

    async def lines(self, address: str, *flags: str) -> list[str]:
        """The lines a --list-services or --list-methods run prints."""
        finished = await run_killed_on_failure(self.argv(address, "", None, *flags))
        assert finished.returncode == 0, finished.stderr
        return finished.stdout.split()

    @contextlib.asynccontextmanager
    async def stream(self, address: str, method: str, body: object) -> AsyncIterator[BufStream]:
        """Start a server-streaming call; killed on leaving if it has not ended."""
        argv = self.argv(address, method, body)
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            yield BufStream(argv, process)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def run_killed_on_failure(argv: list[str], **env: str) -> Finished:
    """Run argv in the repository to its end (at most CALL_DEADLINE_SECONDS), with
    its output as text; the process never outlives a failing or cancelled test."""
    ended = await run_to_exit(*argv, cwd=REPO, deadline=CALL_DEADLINE_SECONDS, **env)
    return Finished(ended.returncode, ended.stdout.decode(), ended.stderr.decode())
