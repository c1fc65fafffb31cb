"""One lock per key, held while a change to that key is committed and applied,
so that the order of changes in the store is the order they take effect in memory.

Turns are given in request order. A turn can be awaited (`hold`) or taken by a
callback (`take`), which lets a hot path change a key without a task of its own:
the callback runs at once when the key is free, else when its turn comes.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable


class KeyedLock:
    def __init__(self) -> None:
        # key → the turns waiting after the holder; an entry lives only while held.
        self._held: dict[str, deque[Callable[[], None]]] = {}

    def take(self, key: str, turn: Callable[[], None]) -> None:
        """Call turn once key is ours: now if it is free, else after the turns
        before it. turn must end with release(key), directly or later."""
        waiting = self._held.get(key)
        if waiting is None:
            self._held[key] = deque()
            turn()
        else:
            waiting.append(turn)

    def release(self, key: str) -> None:
        """End the current turn on key and start the next one, if any."""
        waiting = self._held[key]
        if waiting:
            waiting.popleft()()
        else:
            del self._held[key]

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def turn() -> None:
            if granted.cancelled():
                self.release(key)  # its waiter went away: pass the turn on
            else:
                granted.set_result(None)

        self.take(key, turn)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(key)  # granted, but the holder was cancelled before it ran
            raise
        try:
            yield
        finally:
            self.release(key)

    def in_use(self, key: str) -> bool:
        """Whether a change to key is being made or waited for."""
        return key in self._held

    def __len__(self) -> int:
        """Keys in use: held or waited for."""
        return len(self._held)
