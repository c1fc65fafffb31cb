"""Draining: turning new calls away with UNAVAILABLE while the calls in flight finish.

Stopping a gRPC server cancels calls the transport has taken but no handler
has begun, and a client cannot tell whether a cancelled call was accepted. So
a draining server keeps listening, answers every new call UNAVAILABLE (safe to
retry elsewhere: nothing was accepted), waits for its unary calls in flight to
end, and only then stops. Health and reflection keep answering, so probes see
NOT_SERVING rather than a refused call.
"""

import asyncio
import contextlib
from collections.abc import Iterator

_ALWAYS_ANSWERED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Drained means idle for this long too: calls still in transit when the server
# stops are cancelled, so it stops only once callers have stopped arriving.
QUIET_SECONDS = 0.1


class DrainGate:
    def __init__(self) -> None:
        self.draining = False
        self._last_refusal = float("-inf")
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self) -> None:
        """Refuse new calls from now on. The quiet period counts from here too:
        calls already in transit have yet to arrive and be refused."""
        self.draining = True
        self._last_refusal = asyncio.get_running_loop().time()

    def admits(self, method: str) -> bool:
        """Whether a new call to method may start; a refusal is remembered."""
        if not self.draining or method.startswith(_ALWAYS_ANSWERED):
            return True
        self._last_refusal = asyncio.get_running_loop().time()
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
        """Return once no unary call is in flight and none was refused for
        QUIET_SECONDS."""
        loop = asyncio.get_running_loop()
        while True:
            await self._idle.wait()
            quiet_for = loop.time() - self._last_refusal
            if quiet_for >= QUIET_SECONDS:
                return
            await asyncio.sleep(QUIET_SECONDS - quiet_for)
