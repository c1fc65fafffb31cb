"""Readiness that follows the database: a replica over a shared PostgreSQL
store is ready only while the database answers, and, when it also calls a
downstream, only while that downstream is ready too.

A server's readiness is one flag (RunningServer.set_ready); when two things
decide it, each sets a named condition of a Readiness instead, and the server
is SERVING only while every condition holds. Liveness is never touched: a
process whose database is away is still alive, and restarting it would not
bring the database back.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol, runtime_checkable

from queues.storage import StoreError
from service_runtime.downstream import Downstream, ReadinessTarget
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("service_runtime.store_readiness")

#: What tells whether the database answers: returns if it does, raises
#: StoreError if it does not.
StoreCheck = Callable[[], Awaitable[None]]

#: Seconds between checks for a service whose configuration has no
#: health_interval (the processor's default).
DEFAULT_INTERVAL = 2.0
#: Seconds a check may take before the database is taken as not answering: a
#: host that drops packets would otherwise hold it for asyncpg's connect
#: timeout (60 s).
DEFAULT_TIMEOUT = 5.0


@runtime_checkable
class Pingable(Protocol):
    """A store that can tell whether its database answers (the PostgreSQL ones)."""

    async def ping(self) -> None: ...


def store_check(*stores: object) -> StoreCheck | None:
    """A check pinging each of stores that can be pinged, in turn; None when
    none can (memory and SQLite stores live with the process: nothing to follow)."""
    pingable = [store for store in stores if isinstance(store, Pingable)]
    if not pingable:
        return None

    async def check() -> None:
        for store in pingable:
            await store.ping()

    return check


class Readiness:
    """A server's readiness made of named conditions: SERVING only while every
    one holds. Each starts not holding, until it is first set."""

    def __init__(self, server: ReadinessTarget, conditions: Iterable[str]) -> None:
        self._server = server
        self._conditions = frozenset(conditions)
        self._unmet = set(self._conditions)
        # What was last set on the server (None: nothing yet).
        self._pushed: bool | None = None
        # One change at a time, so the server ends with the latest combination.
        self._lock = asyncio.Lock()

    @property
    def unmet(self) -> frozenset[str]:
        """The conditions that do not hold now."""
        return frozenset(self._unmet)

    async def set(self, condition: str, holds: bool) -> None:
        """Say whether condition holds, and set the server's readiness if the
        combination changed."""
        if condition not in self._conditions:
            raise KeyError(f"no readiness condition {condition!r}")
        async with self._lock:
            if holds:
                self._unmet.discard(condition)
            else:
                self._unmet.add(condition)
            ready = not self._unmet
            if ready != self._pushed:
                self._pushed = ready
                await self._server.set_ready(ready)

    def condition(self, name: str) -> "ReadinessCondition":
        """The condition name, set as a server's readiness is."""
        if name not in self._conditions:
            raise KeyError(f"no readiness condition {name!r}")
        return ReadinessCondition(self, name)


class ReadinessCondition:
    """One condition of a Readiness; a ReadinessTarget, so a tracker written
    for a server's readiness can set it."""

    def __init__(self, readiness: Readiness, name: str) -> None:
        self._readiness = readiness
        self.name = name

    async def set_ready(self, ready: bool) -> None:
        await self._readiness.set(self.name, ready)


async def track_store_readiness(
    server: ReadinessTarget,
    check: StoreCheck,
    *,
    interval: float,
    name: str,
    check_timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Run check() every interval seconds, until cancelled: server is NOT_SERVING
    while it fails (StoreError, or no answer within check_timeout), SERVING again once
    it answers. name says which store, in the logs."""
    answering: bool | None = None
    while True:
        error: str | None = None
        try:
            async with asyncio.timeout(check_timeout):
                await check()
        except StoreError as failure:
            error = str(failure)
        except TimeoutError:
            error = f"no answer within {check_timeout} s"
        now_answering = error is None
        if now_answering != answering:
            answering = now_answering
            await server.set_ready(answering)
            fields = {"store": name} if error is None else {"store": name, "error": error}
            logger.log(
                logging.INFO if answering else logging.WARNING,
                "store answering" if answering else "store unavailable",
                extra={FIELDS_ATTRIBUTE: fields},
            )
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def store_readiness_tracked(
    server: ReadinessTarget, check: StoreCheck | None, *, interval: float, name: str
) -> AsyncIterator[None]:
    """track_store_readiness(server, check) for as long as the block runs, then
    cancelled; nothing when check is None."""
    if check is None:
        yield
        return
    tracker = asyncio.create_task(
        track_store_readiness(server, check, interval=interval, name=name)
    )
    try:
        yield
    finally:
        tracker.cancel()
        # wait(), not await: the tracker's CancelledError is its own, not this task's.
        await asyncio.wait([tracker])


async def track_downstream_and_store_readiness(
    server: ReadinessTarget,
    downstream: Downstream,
    check: StoreCheck,
    *,
    interval: float,
    name: str,
    check_timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Keep server SERVING only while both downstream is ready and check()
    answers, each checked every interval seconds, until cancelled. server
    should start not ready: neither condition holds until first checked."""
    readiness = Readiness(server, ("downstream", "store"))
    async with asyncio.TaskGroup() as trackers:
        trackers.create_task(
            downstream.track_readiness(readiness.condition("downstream"), interval=interval)
        )
        trackers.create_task(
            track_store_readiness(
                readiness.condition("store"),
                check,
                interval=interval,
                name=name,
                check_timeout=check_timeout,
            )
        )
