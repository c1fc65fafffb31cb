"""A Store in one SQLite file, in WAL mode, with group commit.

The file, its checks on opening, its schema's migrations and its handling of a
full disk are sqlite_file.SqliteFile's. commit() queues its changes and waits;
the file's thread takes everything queued so far and writes it in one
transaction (sqlite_file.GroupCommit), so concurrent requests share one fsync
rather than paying for one each. A failed transaction is rolled back and fails
every commit that was in it: nothing half-written is ever read back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from queues.records import RecordError
from queues.sqlite_file import GroupCommit, Migrations, SqliteFile, Synchronous
from queues.storage import Change, encode

T = TypeVar("T")

#: Each schema version's statements, applied in order to reach it.
MIGRATIONS: Migrations = (
    (
        """CREATE TABLE records (
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (collection, key)
        ) WITHOUT ROWID""",
    ),
)

_PUT = "INSERT OR REPLACE INTO records VALUES (?, ?, ?)"


@dataclass(frozen=True, slots=True)
class _Pending:
    changes: Sequence[Change]
    #: Each change's value as JSON; None for a Delete.
    encoded: list[str | None]
    done: asyncio.Future[None]


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self.name = str(path)
        self._file = SqliteFile(
            path, MIGRATIONS, synchronous=synchronous, thread_name=f"sqlite-{path.name}"
        )
        # A lambda, so that what a test puts in place of _write is what writes.
        self._commits = GroupCommit[_Pending](self._file, lambda batch: self._write(batch), _answer)

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._file.connection

    async def open(self) -> None:
        await self._file.open()

    async def load(self, collection: str) -> list[tuple[str, Any]]:
        try:
            rows = await self._run(self._select, collection)
        except sqlite3.Error as error:
            raise self._file.error("read", error) from error
        records = []
        for key, value in rows:
            try:
                records.append((key, orjson.loads(value)))
            except orjson.JSONDecodeError as error:
                raise RecordError(self.name, collection, key, f"is not JSON: {error}") from error
        return records

    def commit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not changes:
            done.set_result(None)
            return done
        try:
            encoded = encode(changes)
        except TypeError as error:
            done.set_exception(error)
            return done
        self._commits.add(_Pending(changes, encoded, done))
        return done

    async def close(self) -> None:
        await self._commits.finish()
        await self._file.close()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await self._file.run(function, *args)

    # -- on the file's thread ----------------------------------------------------

    def _select(self, collection: str) -> list[tuple[str, str]]:
        assert self._connection is not None
        return self._connection.execute(
            "SELECT key, value FROM records WHERE collection = ? ORDER BY key", (collection,)
        ).fetchall()

    def _write(self, batch: list[_Pending]) -> None:
        self._file.transaction(lambda connection: _apply(connection, batch))


def _apply(connection: sqlite3.Connection, batch: list[_Pending]) -> None:
    # Runs of puts go through one executemany: the statement loop then runs
    # in C, holding the GIL the event loop's thread needs for less time.
    puts: list[tuple[str, str, str]] = []
    for pending in batch:
        for change, text in zip(pending.changes, pending.encoded, strict=True):
            if text is not None:
                puts.append((change.collection, change.key, text))
                continue
            connection.executemany(_PUT, puts)
            puts.clear()
            connection.execute(
                "DELETE FROM records WHERE collection = ? AND key = ?",
                (change.collection, change.key),
            )
    connection.executemany(_PUT, puts)


def _answer(batch: list[_Pending]) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_result(None)
