"""A Store whose commits a test can make fail or hold, to see what a manager does then."""

import asyncio
from collections.abc import Callable, Sequence

from queues.storage import Change, MemoryStore, StoreError


class ScriptedStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        #: Commits for which this answers True raise StoreError, writing nothing.
        self.refuse: Callable[[Sequence[Change]], bool] = lambda changes: False
        #: While set, each commit waits for it to be set before it goes on.
        self.gate: asyncio.Event | None = None
        #: Set by each commit as it starts; a test clears it to wait for the next.
        self.entered = asyncio.Event()
        #: Every commit that was written.
        self.written: list[Sequence[Change]] = []

    async def commit(self, changes: Sequence[Change]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.refuse(changes):
            raise StoreError("scripted store: disk full")
        await super().commit(changes)
        self.written.append(changes)


def in_collection(name: str) -> Callable[[Sequence[Change]], bool]:
    """A refuse rule: any commit touching collection name."""
    return lambda changes: any(change.collection == name for change in changes)
