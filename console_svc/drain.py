"""What a drain needs to know of the calls the console is bridging: how many
unary calls are in flight, and a signal that ends every open stream."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from connectrpc.code import Code
from connectrpc.errors import ConnectError

#: What a call that arrives during a drain, and a stream ended by one, is told:
#: the page reconnects, to this console once it is back or to another replica.
DRAINING_MESSAGE = "the console is shutting down; try again"


class DrainGate:
    """Counts the bridged calls, refuses new ones once draining, and tells open
    streams when to end."""

    def __init__(self) -> None:
        self._unary_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        #: Set when open streams are to end (StreamCloser watches it).
        self.streams_closing = asyncio.Event()
        self.open_streams = 0

    @property
    def draining(self) -> bool:
        return self._draining

    def start(self) -> None:
        """From now on every new call is answered UNAVAILABLE."""
        self._draining = True

    def refuse_if_draining(self) -> None:
        if self._draining:
            raise ConnectError(Code.UNAVAILABLE, DRAINING_MESSAGE)

    @contextmanager
    def unary(self) -> Iterator[None]:
        """Hold the drain back while a unary call runs."""
        self.refuse_if_draining()
        self._unary_in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._unary_in_flight -= 1
            if self._unary_in_flight == 0:
                self._idle.set()

    @contextmanager
    def stream(self) -> Iterator[asyncio.Event]:
        """Count an open stream; the event it yields is set when it must end."""
        self.refuse_if_draining()
        self.open_streams += 1
        try:
            yield self.streams_closing
        finally:
            self.open_streams -= 1

    async def unary_drained(self) -> None:
        """Return once no unary call is in flight."""
        await self._idle.wait()

    def close_streams(self) -> None:
        """End every open stream with UNAVAILABLE (DRAINING_MESSAGE)."""
        self.streams_closing.set()
