"""Fixtures: a quote service started in-process on port 0 (see quote_harness)."""

import pytest
from support.quote_harness import QuoteHarness, StartQuote


@pytest.fixture
async def quote(start_quote: StartQuote) -> QuoteHarness:
    return await start_quote()
