"""Fixtures: a quote service started in-process on port 0 (see quote_harness)."""

import functools
from collections.abc import AsyncIterator

import pytest
from quote_harness import QuoteHarness, StartQuote, start_quote_harness, stop_quote_harness


@pytest.fixture
async def start_quote() -> AsyncIterator[StartQuote]:
    started: list[QuoteHarness] = []
    yield functools.partial(start_quote_harness, started)
    for harness in started:
        await stop_quote_harness(harness)


@pytest.fixture
async def quote(start_quote: StartQuote) -> QuoteHarness:
    return await start_quote()
