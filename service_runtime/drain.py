"""Draining: turning new calls away with UNAVAILABLE while the calls in flight finish.

Stopping a gRPC server cancels calls the transport has taken but no handler
has begun, and a client cannot tell whether a cancelled call was accepted. So
a draining server keeps listening, answers every new call UNAVAILABLE (safe to
retry elsewhere: nothing was accepted), waits for its unary calls in flight to
end, and only then stops. Health and reflection keep answering, so probes see
NOT_SERVING rather than a refused call.

A refused client that calls again at once keeps a call in transit all the
time, and the stop would cancel it. So once the calls in flight are done, the
refusals are held back: each new call waits, unanswered, so a client waiting
for its answer sends nothing more. When no new call has arrived for
SETTLE_QUIET_SECONDS (or SETTLE_MAX_SECONDS have passed, against clients that
do not wait), the server stops: its listener closes, every connection is told
to go away, and only then are the held calls answered UNAVAILABLE. Their
retries find the listener closed, which is UNAVAILABLE too.
"""

import asyncio
import contextlib
from collections.abc import Iterator

_ALWAYS_ANSWERED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
#: Settled means no new call for this long: a client answered just before the
#: refusals were held has had the time to send its next call, and be held.
SETTLE_QUIET_SECONDS = 0.05
#: The longest the refusals are held: clients that send without waiting for
#: answers never let the server settle.
SETTLE_MAX_SECONDS = 1.0


class DrainGate:
    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Set while refusals are answered at once; cleared while they are held.
        self._answering = asyncio.Event()
        self._answering.set()
        self._arrived = asyncio.Event()

    def start(self) -> None:
        """Refuse new calls from now on."""
        self.draining = True

    async def admits(self, method: str) -> bool:
        """Whether a new call to method may start. While refusals are held
        (hold()), a refused call waits here for release() before it is refused."""
        if not self.draining or method.startswith(_ALWAYS_ANSWERED):
            return True
        self._arrived.set()
        await self._answering.wait()
        return False

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """Count a unary call as in flight while the block runs."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def drained(self) -> None:
        """Return once no unary call is in flight."""
        await self._idle.wait()

    async def settle(self) -> None:
        """Hold refusals back, and return once no new call has arrived for
        SETTLE_QUIET_SECONDS, or after SETTLE_MAX_SECONDS. The refusals stay
        held until release()."""
        self._answering.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_MAX_SECONDS):
                while True:
                    self._arrived.clear()
                    try:
                        async with asyncio.timeout(SETTLE_QUIET_SECONDS):
                            await self._arrived.wait()
                    except TimeoutError:
                        return

    def release(self) -> None:
        """Answer the held refusals, and every later one at once."""
        self._answering.set()
