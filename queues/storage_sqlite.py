"""A Store in one SQLite file, in WAL mode, with group commit.

Every statement runs on one writer thread that owns the connection. commit()
queues its changes and waits; the thread takes everything queued so far and
writes it in one transaction, so concurrent requests share one fsync rather
than paying for one each. A failed transaction is rolled back and fails every
commit that was in it: nothing half-written is ever read back.

Opening reads before it writes. The file is checked through a read-only
connection first (PRAGMA quick_check, then its schema version), so a file that
is damaged, not a database, some other program's database or a newer
program's store is refused exactly as it was found; only then is it opened for
writing, and the schema is written only when it must be migrated.

A zero-length file with a -wal or -shm file beside it is refused too. Only a
database in WAL mode has those, and such a database always has a header, so
the empty file lost its content after an earlier run; the WAL may hold every
commit since the last checkpoint, and SQLite, opening an empty file, would
delete it and start over empty. Restore the file, or remove the file, its -wal
and its -shm to start empty on purpose. A zero-length file alone is what a
crash between creating the file and writing its header leaves; nothing was
committed to it, and it is opened as a new store.

A full disk: SQLite may end a transaction itself when it fails (SQLITE_FULL),
so the error reported is the one that failed the transaction, never that of a
ROLLBACK with no transaction left to end. After a failed transaction the WAL is
checkpointed and truncated, so space freed on the disk goes to the next commit
instead of to a WAL growing back into it; on a disk still full the checkpoint
fails too, and is tried again after every commit until it completes.
journal_size_limit keeps the WAL from staying at its largest after a burst.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from queues.records import RecordError
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

# What a WAL is truncated to when a checkpoint resets it: about what
# SQLite's automatic checkpoint (every 1,000 pages) lets it reach.
_JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_PUT = "INSERT OR REPLACE INTO records VALUES (?, ?, ?)"

_Pending = tuple[Sequence[Change], list[str | None], asyncio.Future[None]]


class SqliteStore:
    def __init__(self, path: Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = path
        self.name = str(path)
        self._synchronous = synchronous
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sqlite-{path.name}"
        )
        self._connection: sqlite3.Connection | None = None
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        # Owed after a failed transaction, until a checkpoint completes (_checkpoint).
        self._checkpoint_owed = False

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
        if self.path.exists():
            self._refuse_empty_beside_wal()
            self._check()
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            connection.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _refuse_empty_beside_wal(self) -> None:
        if self.path.is_file() and self.path.stat().st_size == 0:
            beside = [sidecar.name for sidecar in self._sidecars() if sidecar.exists()]
            if beside:
                raise sqlite3.DatabaseError(
                    f"the file is empty, but an earlier run left {' and '.join(beside)} "
                    "beside it, which may hold its data; restore the file, or remove "
                    "it and them to start empty"
                )

    def _sidecars(self) -> tuple[Path, ...]:
        """The -wal and -shm files SQLite keeps beside a file in WAL mode."""
        return tuple(self.path.with_name(self.path.name + end) for end in ("-wal", "-shm"))

    def _check(self) -> None:
        """Refuse a file this store cannot use, through a connection that cannot
        write: not even a checkpoint of its WAL changes the file."""
        found = {sidecar for sidecar in self._sidecars() if sidecar.exists()}
        try:
            self._check_read_only()
        except sqlite3.DatabaseError:
            # Reading a WAL-mode file makes an empty -wal and an -shm beside it;
            # a refused file is left as it was found, without them.
            for sidecar in set(self._sidecars()) - found:
                sidecar.unlink(missing_ok=True)
            raise

    def _check_read_only(self) -> None:
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            try:
                problems = connection.execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as error:  # too damaged to check, or not a database
                problems = [(str(error),)]
            if problems != [("ok",)]:
                raise sqlite3.DatabaseError(f"the file is damaged: {problems[0][0]}")
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            if tables and "schema_version" not in tables:
                raise sqlite3.DatabaseError(
                    f"it holds tables ({', '.join(sorted(tables))}) but no schema version: "
                    "it is not a store"
                )
            if tables:
                _schema_version(connection)
        finally:
            connection.close()

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock at once: a read-only file fails
        # here, at start-up, not on the first request.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            version = _schema_version(connection)
            if version < SCHEMA_VERSION:
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        connection.execute(statement)
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
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
            _roll_back(connection)
            self._checkpoint_owed = True
            self._checkpoint()
            raise
        if self._checkpoint_owed:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Move what the WAL holds into the file and truncate the WAL, so that
        space freed on a full disk goes to the next commits rather than to a WAL
        growing back into it. On a disk still full it fails, as it must grow the
        file; it stays owed, and is tried after each commit until it completes."""
        assert self._connection is not None
        with contextlib.suppress(sqlite3.Error):
            busy, _, _ = self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            # busy: a reader held the WAL, so it was not truncated.
            self._checkpoint_owed = busy != 0


def _schema_version(connection: sqlite3.Connection) -> int:
    """The stored schema's version (0 for none yet); refuses a newer one."""
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    version = 0 if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this program's {SCHEMA_VERSION}"
        )
    return version


def _roll_back(connection: sqlite3.Connection) -> None:
    """End a failed transaction. SQLite ends some itself (a full disk does), and
    a failing ROLLBACK must not hide the error that failed the transaction."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
