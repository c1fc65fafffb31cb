"""Reads of one thing made at about the same time share one read: the
watchers of one order, woken together by one append, read the new entries
once rather than once each.

Sharing must not hand a caller an answer older than what it was told of. So
a caller first takes a mark (after subscribing, or after taking a change from
its subscription): it joins only a read that began after its mark, which
sees every write committed before it, and starts its own otherwise. A change
committed after a shared read began is the subject of a notification the
caller has not taken yet, so it reads again once it takes that one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import ClassVar, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedReads(Generic[K, V]):
    #: Reads begun so far, by every instance: each read is numbered by when it
    #: began, so one mark serves a caller's reads of several kinds.
    _begun: ClassVar[int] = 0

    def __init__(self) -> None:
        self._flights: dict[K, tuple[int, asyncio.Future[V]]] = {}

    @staticmethod
    def mark() -> int:
        """A moment to read after: reads that begin from now on are newer."""
        return SharedReads._begun

    async def read(self, key: K, since: int, read: Callable[[], Awaitable[V]]) -> V:
        """read()'s answer, or that of a read of key in flight that began after since."""
        flight = self._flights.get(key)
        if flight is None or flight[0] <= since:
            SharedReads._begun += 1
            future = asyncio.ensure_future(read())
            flight = (SharedReads._begun, future)
            self._flights[key] = flight
            future.add_done_callback(functools.partial(self._forget, key, flight))
        # One caller going away does not cancel the read the others wait on.
        return await asyncio.shield(flight[1])

    def _forget(self, key: K, flight: tuple[int, asyncio.Future[V]], _: object) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        # Read by nobody if every caller went away: not an error to report.
        if not flight[1].cancelled():
            flight[1].exception()
