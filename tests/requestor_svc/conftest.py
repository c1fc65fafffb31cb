"""Fixtures: a scripted fake processor, and requestor services in-process on port 0
following it (see requestor_harness)."""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from support.requestor_harness import (
    FakeProcessor,
    FakeProcessorServer,
    RequestorHarness,
    start_requestor_harness,
    stop_requestor_harness,
)

StartRequestor = Callable[..., Awaitable[RequestorHarness]]


@pytest.fixture
async def processor() -> AsyncIterator[FakeProcessorServer]:
    server = FakeProcessorServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def fake(processor: FakeProcessorServer) -> FakeProcessor:
    return processor.fake


@pytest.fixture
async def start_requestor(processor: FakeProcessorServer) -> AsyncIterator[StartRequestor]:
    """Start requestor services following the fake processor; stopped after the test."""
    started: list[RequestorHarness] = []
    yield functools.partial(start_requestor_harness, started, processor.address)
    for harness in started:
        await stop_requestor_harness(harness)


@pytest.fixture
async def requestor(start_requestor: StartRequestor) -> RequestorHarness:
    return await start_requestor()
