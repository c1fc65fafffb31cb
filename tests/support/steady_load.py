"""Steady client load: callers that call again as soon as they are answered."""

import asyncio
import collections
from collections.abc import Awaitable, Callable

import grpc


class SteadyLoad:
    """Callers that each call until told the server is gone, counting the
    codes they get; each has a budget of calls, so a server that never goes
    ends the load instead of hanging the test."""

    def __init__(self, call: Callable[[], Awaitable[object]], *, callers: int, budget: int) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        #: Set once the callers have had this many answers between them.
        self.answered = asyncio.Event()
        self._call = call
        self._budget = budget
        self._gone = asyncio.Event()
        self._callers = [asyncio.create_task(self._caller()) for _ in range(callers)]

    async def wait_answered(self, count: int) -> None:
        while sum(self.codes.values()) < count:
            self.answered.clear()
            await self.answered.wait()

    async def finish(self) -> bool:
        """Tell the callers the server is gone; True if each of them was still
        calling then, rather than having spent its budget."""
        self._gone.set()
        return all(await asyncio.gather(*self._callers))

    async def _caller(self) -> bool:
        for _ in range(self._budget):
            try:
                await self._call()
                self.codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                self.codes[error.code().name] += 1
            self.answered.set()
            if self._gone.is_set():
                return True
        return False
