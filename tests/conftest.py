"""Fixtures every test folder can use."""

import functools
from collections.abc import AsyncIterator

import pytest
from quote_harness import QuoteHarness, StartQuote, start_quote_harness, stop_quote_harness


@pytest.fixture
async def start_quote() -> AsyncIterator[StartQuote]:
    """Start quote services in-process on port 0; stopped after the test."""
    started: list[QuoteHarness] = []
    yield functools.partial(start_quote_harness, started)
    for harness in started:
        await stop_quote_harness(harness)
