"""Change notifications: every write a store makes to a job is announced to the
subscribers of its queue, so workers wake when there is work and watchers see
each change, on whichever process (or replica) made it.

A store announces through a ChangeHub: the in-process stores publish to it as
they commit; PostgresJobStore NOTIFYs in the writing transaction and publishes
what its LISTEN connection hears, so every replica's hub hears every replica's
writes. A notification says that a job changed, and to what state; a
subscriber reads the job itself for the rest. Notifications may be coalesced
or (on a reconnect) lost, never invented: a subscriber that must not miss a
state reads it after subscribing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from queues.core.jobs import JobState


class Change(Protocol):
    @property
    def topic(self) -> str:
        """What subscribers subscribe to: a queue's name, or a log's (space, name)."""


C = TypeVar("C", bound=Change)


@dataclass(frozen=True, slots=True)
class JobChange:
    queue: str
    job_id: str
    state: JobState

    @property
    def topic(self) -> str:
        return self.queue


def log_topic(space: str, name: str) -> str:
    return f"{space}\x1f{name}"


@dataclass(frozen=True, slots=True)
class LogChange:
    """A log was appended to (seq is its last entry's), closed or removed."""

    space: str
    name: str
    seq: int

    @property
    def topic(self) -> str:
        return log_topic(self.space, self.name)


class Subscription(Generic[C]):
    """The changes announced for one topic since the subscription began."""

    def __init__(self) -> None:
        self._changes: asyncio.Queue[C] = asyncio.Queue()

    def put(self, change: C) -> None:
        self._changes.put_nowait(change)

    async def next_within(self, seconds: float | None) -> C | None:
        """The next change, or None if none comes within that many seconds
        (None: wait as long as it takes)."""
        try:
            async with asyncio.timeout(seconds):
                return await self._changes.get()
        except TimeoutError:
            return None

    def clear(self) -> None:
        """Forget the changes announced so far: a subscriber about to read the
        state anew needs only the ones after it."""
        while not self._changes.empty():
            self._changes.get_nowait()

    def __aiter__(self) -> AsyncIterator[C]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[C]:
        while True:
            yield await self._changes.get()


class ChangeHub(Generic[C]):
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription[C]]] = {}

    def publish(self, change: C) -> None:
        for subscription in self._subscribers.get(change.topic, ()):
            subscription.put(change)

    @contextlib.contextmanager
    def subscribe(self, topic: str) -> Iterator[Subscription[C]]:
        subscription: Subscription[C] = Subscription()
        subscribers = self._subscribers.setdefault(topic, set())
        subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[topic]
