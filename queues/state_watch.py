"""Following an item's state until it is final: the watch behind WatchMessage and
GetTaskResult-style streams, shared by the message queue and the task pool."""

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

S = TypeVar("S")


class StateWatch(Generic[S]):
    """Watchers per item key. The owner calls publish(key, state) after every
    change; each watcher gets its own snapshot queue, so a slow watcher delays
    nobody and a cancelled one disturbs nobody."""

    def __init__(self, is_final: Callable[[S], bool]) -> None:
        self._is_final = is_final
        self._watchers: dict[str, set[asyncio.Queue[S]]] = {}

    def publish(self, key: str, state: S) -> None:
        """Hand a snapshot of state to the item's watchers, if it has any."""
        watchers = self._watchers.get(key)
        if watchers:
            snapshot = copy.copy(state)
            for changes in watchers:
                changes.put_nowait(snapshot)

    async def follow(self, key: str, state: S) -> AsyncIterator[S]:
        """Yield a snapshot of state as it is now, then every published change,
        ending after a final state. The caller must pass the item's current state
        with no await in between, so no change can fall between the two."""
        if self._is_final(state):
            yield copy.copy(state)
            return
        changes: asyncio.Queue[S] = asyncio.Queue()
        watchers = self._watchers.setdefault(key, set())
        watchers.add(changes)
        try:
            yield copy.copy(state)
            while True:
                current = await changes.get()
                yield current
                if self._is_final(current):
                    return
        finally:
            watchers.discard(changes)
            if not watchers:
                self._watchers.pop(key, None)
