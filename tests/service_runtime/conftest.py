"""A running server with a scripted QuoteService, a stub to call it, and a log recorder."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import pytest

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.server import RunningServer, ServiceBinding, start_server

QUOTE_SERVICE = quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name


class ScriptedQuoteServicer(quote_grpc.QuoteServiceServicer):
    """Answers GetMessage and WatchMessage as the test set it up to; GetStats never answers."""

    def __init__(self) -> None:
        #: Raised by GetMessage, and by WatchMessage after its messages.
        self.error: BaseException | None = None
        #: How many messages WatchMessage sends before raising error or ending.
        self.stream_length = 0
        #: WatchMessage waits forever after its messages instead of ending.
        self.stream_holds = False
        #: Set once WatchMessage has sent all its messages.
        self.stream_sent = asyncio.Event()
        #: Set once GetStats is running.
        self.stats_started = asyncio.Event()

    async def GetMessage(self, request, context):
        if self.error is not None:
            raise self.error
        return quote_pb2.GetMessageResponse(message=quote_pb2.QueueMessage(id=request.id))

    async def WatchMessage(self, request, context):
        for _ in range(self.stream_length):
            yield quote_pb2.WatchMessageResponse(message=quote_pb2.QueueMessage(id=request.id))
        self.stream_sent.set()
        if self.stream_holds:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error

    async def GetStats(self, request, context):
        self.stats_started.set()
        await asyncio.Event().wait()


class RecordingHandler(logging.Handler):
    """Keeps records and lets a test wait for one, without sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def rpc_fields(self) -> list[dict[str, object]]:
        return [r.fields for r in self.records if r.name == "service_runtime.rpc"]

    async def wait_for(self, matches: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        while True:
            for record in self.records:
                if matches(record):
                    return record
            # No await between the scan and clear(), so no record slips past.
            self._changed.clear()
            await self._changed.wait()

    async def wait_for_rpc(self, method: str) -> dict[str, object]:
        record = await self.wait_for(
            lambda r: r.name == "service_runtime.rpc" and r.fields["method"] == method
        )
        return record.fields


@pytest.fixture
def log_records() -> Iterator[RecordingHandler]:
    handler = RecordingHandler()
    runtime_logger = logging.getLogger("service_runtime")
    previous_level = runtime_logger.level
    runtime_logger.addHandler(handler)
    runtime_logger.setLevel(logging.DEBUG)
    yield handler
    runtime_logger.removeHandler(handler)
    runtime_logger.setLevel(previous_level)


@pytest.fixture
def servicer() -> ScriptedQuoteServicer:
    return ScriptedQuoteServicer()


@pytest.fixture
async def server(servicer: ScriptedQuoteServicer) -> AsyncIterator[RunningServer]:
    running = await start_server(
        [
            ServiceBinding(
                QUOTE_SERVICE, lambda s: quote_grpc.add_QuoteServiceServicer_to_server(servicer, s)
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    yield running
    await running.stop(None)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> quote_grpc.QuoteServiceStub:
    return quote_grpc.QuoteServiceStub(channel)
