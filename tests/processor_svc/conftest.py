"""Fixtures: a quote service and a processor pricing through it, both in-process."""

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from support.processor_harness import ProcessorHarness, processor_harness
from support.quote_harness import QuoteHarness, StartQuote


@pytest.fixture
async def start_processor() -> AsyncIterator[Callable[..., object]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(quote_address: str, **overrides: object) -> ProcessorHarness:
            return await stack.enter_async_context(processor_harness(quote_address, **overrides))

        yield start


@pytest.fixture
async def quote(start_quote: StartQuote) -> QuoteHarness:
    return await start_quote(workers=2, max_retries=0)


@pytest.fixture
async def processor(quote: QuoteHarness, start_processor) -> ProcessorHarness:
    return await start_processor(quote.server.address)
