"""How tests wait for a state: poll() for what can only be read, final_state() for
what can be watched. Every wait has a deadline and fails naming what it waited for."""

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Longest a test waits for a state it polls for before it fails: generous, since
#: the machine running the suite may be slow and shared.
POLL_DEADLINE_SECONDS = 30.0


async def poll(
    read: Callable[[], T | Awaitable[T]],
    done: Callable[[T], bool],
    what: str,
    *,
    within: float = POLL_DEADLINE_SECONDS,
    every: float = 0.005,
) -> T:
    """Read (calling read(), awaiting it if it is a coroutine function) until
    done(value), and return that value; fail after `within` seconds, showing the
    last value read."""
    last: T | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                value = read()
                last = await value if inspect.isawaitable(value) else value
                if done(last):
                    return last
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"never saw {what}; last value: {last!r}") from None


class Watchable(Protocol[T_co]):
    def watch(self, item_id: str, /) -> AsyncIterator[T_co]: ...


async def final_state(source: Watchable[T], item_id: str) -> T:
    """The last state source.watch(item_id) shows: the watch ends at a final one."""
    async with asyncio.timeout(POLL_DEADLINE_SECONDS):
        async for state in source.watch(item_id):
            last = state
    return last
