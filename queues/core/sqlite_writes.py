"""A core store's access to its SQLite file: reads, run on the file's thread
between batches, and writes, group-committed
(sqlite_file.GroupCommit): those queued while a transaction is written run
together in the next one, each in its own SAVEPOINT, so that one operation's
error (a lost claim, a full queue, a closed log) undoes only what it wrote and
is raised to its caller alone, while the batch shares one COMMIT and one
fsync. A failed COMMIT fails every operation of the batch. Each operation's
changes are announced only once its batch is committed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from queues.core.changes import C, ChangeHub
from queues.sqlite_file import GroupCommit, SqliteFile
from queues.storage import CommitObserver

T = TypeVar("T")


@dataclass(slots=True)
class _Operation(Generic[T, C]):
    work: Callable[[sqlite3.Connection], T]
    #: The changes work made, from its answer: announced once committed.
    changed: Callable[[T], Iterable[C]]
    done: asyncio.Future[T]
    #: work's answer or its error, set on the file's thread.
    answer: Any = None
    error: Exception | None = None


class SqliteAccess(Generic[C]):
    def __init__(
        self, file: SqliteFile, hub: ChangeHub[C], commits: CommitObserver | None = None
    ) -> None:
        self._hub = hub
        self._file = file
        self._commits = GroupCommit[_Operation[Any, C]](
            file,
            lambda batch: file.transaction(lambda c: _each_in_a_savepoint(c, batch)),
            self._answer,
            commits,
        )

    async def write(
        self,
        work: Callable[[sqlite3.Connection], T],
        changed: Callable[[T], Iterable[C]] = lambda _: (),
    ) -> T:
        """work's answer, once the transaction it ran in is committed; the
        changes changed(answer) names are announced then."""
        operation: _Operation[T, C] = _Operation(
            work, changed, asyncio.get_running_loop().create_future()
        )
        self._commits.add(operation)
        return await operation.done

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """work's answer, run on the file's thread between batches. Raises
        the file's StoreError for a database error."""

        def read() -> T:
            assert self._file.connection is not None
            return work(self._file.connection)

        try:
            return await self._file.run(read)
        except sqlite3.Error as error:
            raise self._file.error("read", error) from error

    async def open(self) -> None:
        await self._file.open()

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        await self._commits.finish()
        await self._file.close()

    def _answer(self, batch: list[_Operation[Any, C]]) -> None:
        """After the batch's COMMIT: each operation's changes are announced, and
        its answer or its own error given to its caller, if it still waits."""
        for operation in batch:
            waiting = not operation.done.done()
            if operation.error is not None:
                if waiting:
                    operation.done.set_exception(operation.error)
                continue
            for change in operation.changed(operation.answer):
                self._hub.publish(change)
            if waiting:
                operation.done.set_result(operation.answer)


def _each_in_a_savepoint(c: sqlite3.Connection, batch: list[_Operation[Any, Any]]) -> None:
    """Run each operation of the batch in its own savepoint, so that one's error
    undoes only what it wrote, and is kept for its caller alone. A database
    error is the file's, not the operation's: it fails the whole batch."""
    for operation in batch:
        c.execute("SAVEPOINT operation")
        try:
            operation.answer = operation.work(c)
        except sqlite3.Error:
            raise
        except Exception as error:
            c.execute("ROLLBACK TO operation")
            operation.error = error
        c.execute("RELEASE operation")
