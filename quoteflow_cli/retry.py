"""Trying a call again while the quote queue is full, as long as the service asks."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from quoteflow_cli.errors import CallError

T = TypeVar("T")

DEFAULT_RETRIES = 10

# Without a RetryInfo (it always has one today), back off from half a second.
_FALLBACK_BASE_SECONDS = 0.5
_FALLBACK_CAP_SECONDS = 30.0
# Concurrent callers refused together would all come back together; a little
# jitter above the asked-for delay spreads them out.
_JITTER = 0.25


async def retrying_when_full(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    on_retry: Callable[[CallError], None] = lambda error: None,
) -> T:
    """attempt(), again after the RetryInfo delay each time it answers
    RESOURCE_EXHAUSTED (nothing was accepted, so another try cannot duplicate
    anything), at most retries more times; other errors are raised at once."""
    tried = 0
    while True:
        try:
            return await attempt()
        except CallError as error:
            if error.code != grpc.StatusCode.RESOURCE_EXHAUSTED or tried >= retries:
                raise
            on_retry(error)
            delay = error.retry_delay
            if delay is None:
                delay = min(_FALLBACK_CAP_SECONDS, _FALLBACK_BASE_SECONDS * 2**tried)
            tried += 1
            await asyncio.sleep(delay * (1 + random.uniform(0, _JITTER)))
