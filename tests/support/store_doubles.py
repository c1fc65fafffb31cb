"""Stores whose commits a test can make fail or hold, to see what a manager does then."""

import asyncio
from collections.abc import Callable, Sequence

from queues.storage import Change, MemoryStore, Put, StoreError
from queues.storage_sqlite import SqliteStore


class ScriptedStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        #: Commits for which this answers True raise StoreError, writing nothing.
        self.refuse: Callable[[Sequence[Change]], bool] = lambda changes: False
        #: While set, each commit waits for it to be set before it goes on.
        self.gate: asyncio.Event | None = None
        #: Set by each commit as it starts; a test clears it to wait for the next.
        self.entered = asyncio.Event()
        #: While True, every commit is refused (as if refuse answered True).
        self.failing = False
        #: One item per refused commit, for a test to wait on.
        self.refusals: asyncio.Queue[None] = asyncio.Queue()
        #: Set by each commit once it is written.
        self.committed = asyncio.Event()
        #: Every commit that was written.
        self.written: list[Sequence[Change]] = []
        self._under_way: set[asyncio.Task[None]] = set()

    def commit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._commit(changes, done))
        self._under_way.add(task)
        task.add_done_callback(self._under_way.discard)
        return done

    async def _commit(self, changes: Sequence[Change], done: asyncio.Future[None]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failing or self.refuse(changes):
            self.refusals.put_nowait(None)
            done.set_exception(StoreError("scripted store: disk full"))
            return
        written = super().commit(changes)
        if (error := written.exception()) is not None:
            done.set_exception(error)
            return
        self.written.append(changes)
        # Settled before the event is set, so what the committer does once its
        # commit is done has been done when a test waiting on `committed` wakes.
        done.set_result(None)
        self.committed.set()

    def puts(self) -> list[object]:
        """The value of every Put written, in order."""
        return [c.value for changes in self.written for c in changes if isinstance(c, Put)]


def in_collection(name: str) -> Callable[[Sequence[Change]], bool]:
    """A refuse rule: any commit touching collection name."""
    return lambda changes: any(change.collection == name for change in changes)


async def cap_pages(store: SqliteStore, pages: int | None = None) -> None:
    """Let an open SqliteStore's file grow to `pages` pages (None: no more than it
    has), as a full disk would; SQLite raises a cap below the file's size to its size."""
    assert store._connection is not None
    await store._run(store._connection.execute, f"PRAGMA max_page_count={pages or 1}")
