"""Which event loop a service runs on.

uvloop is the default where it is installed (every platform but Windows):
on the quote service it served about a fifth more calls per CPU-second than
asyncio's own loop, measured by `make bench` (docs/benchmarks.md, levers).
"""

import asyncio
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str) -> LoopFactory | None:
    """The factory asyncio.Runner should make the loop with; None for asyncio's
    own. choice is "uvloop", "asyncio" or "auto" (uvloop when it is installed).
    Raises ValueError for "uvloop" when it is not installed, naming it."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError("event_loop uvloop needs the uvloop package installed") from None
        return None
    return uvloop.new_event_loop
