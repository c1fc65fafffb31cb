"""A Store in one SQLite file, in WAL mode, with group commit.

Every statement runs on one writer thread that owns the connection. commit()
queues its changes and waits; the thread takes everything queued so far and
writes it in one transaction, so concurrent requests share one fsync rather
than paying for one each. A failed transaction is rolled back and fails every
commit that was in it: nothing half-written is ever read back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from queues.storage import Change, StoreError, encode

#: Each schema version's statements, applied in order to reach it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE records (
            collection TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (collection, key)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: FULL syncs the log on every commit, so a commit survives power loss as well as
#: a crash of the process; NORMAL survives a crash of the process only.
Synchronous = Literal["FULL", "NORMAL"]

_PUT = "INSERT OR REPLACE INTO records VALUES (?, ?, ?)"

_Pending = tuple[Sequence[Change], list[str | None], asyncio.Future[None]]


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sqlite-{path.name}"
        )
        self._connection: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self._run(self._open)
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot open store {self.path}: {error}") from error

    async def load(self, collection: str) -> list[tuple[str, Any]]:
        try:
            rows = await self._run(self._select, collection)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read store {self.path}: {error}") from error
        return [(key, orjson.loads(value)) for key, value in rows]

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
        self._pending.append((changes, encoded, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        return done

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)
        if self._connection is not None:
            await self._run(self._connection.close)
            self._connection = None
        self._thread.shutdown(wait=True)

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._run(self._write, batch)
                except sqlite3.Error as error:
                    failure = StoreError(f"cannot write store {self.path}: {error}")
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(failure)
                    continue
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writer = None

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    # -- on the writer thread ----------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock at once: a read-only file fails
        # here, at start-up, not on the first request.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this program's {SCHEMA_VERSION}"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _select(self, collection: str) -> list[tuple[str, str]]:
        assert self._connection is not None
        return self._connection.execute(
            "SELECT key, value FROM records WHERE collection = ? ORDER BY key", (collection,)
        ).fetchall()

    def _write(self, batch: list[_Pending]) -> None:
        assert self._connection is not None
        connection = self._connection
        # Runs of puts go through one executemany: the statement loop then runs
        # in C, holding the GIL the event loop's thread needs for less time.
        puts: list[tuple[str, str, str]] = []
        connection.execute("BEGIN")
        try:
            for changes, encoded, _ in batch:
                for change, text in zip(changes, encoded, strict=True):
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
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
