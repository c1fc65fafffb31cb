"""One asyncio lock per key, held while a change to that key is committed and applied,
so that the order of changes in the store is the order they take effect in memory."""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class KeyedLock:
    def __init__(self) -> None:
        # key → (lock, holders and waiters); an entry lives only while in use.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def in_use(self, key: str) -> bool:
        """Whether a change to key is being made or waited for."""
        return key in self._locks

    def __len__(self) -> int:
        """Keys in use: held or waited for."""
        return len(self._locks)
