"""One SQLite file in WAL mode, and the one thread that uses it: what both
SQLite stores (storage_sqlite.SqliteStore, the records journal, and
core.sqlite_store.SqliteJobStore, the durable core) stand on.

Every statement runs on the file's thread, which owns the connection.

Opening reads before it writes. The file is checked through a read-only
connection first (PRAGMA quick_check, then its schema version and its tables),
so a file that is damaged, not a database, some other program's database, a
newer program's store or a store of another kind is refused exactly as it was
found; only then is it opened for writing, and the schema is written only when
it must be migrated.

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

Group commit (GroupCommit): what is queued while a transaction is being written
goes into the next one, so concurrent writers share one transaction and one
fsync rather than paying for one each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from queues.storage import CommitObserver, StoreError

T = TypeVar("T")

#: Each schema version's statements, applied in order to reach it.
Migrations = tuple[tuple[str, ...], ...]

#: FULL syncs the log on every commit, so a commit survives power loss as well as
#: a crash of the process; NORMAL survives a crash of the process only.
Synchronous = Literal["FULL", "NORMAL"]

# What a WAL is truncated to when a checkpoint resets it: about what
# SQLite's automatic checkpoint (every 1,000 pages) lets it reach.
_JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)"


class SqliteFile:
    def __init__(
        self, path: Path, migrations: Migrations, *, synchronous: Synchronous, thread_name: str
    ) -> None:
        self.path = path
        self._migrations = migrations
        self._synchronous = synchronous
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=thread_name
        )
        #: The writing connection while open; used on the file's thread only.
        self.connection: sqlite3.Connection | None = None
        # Owed after a failed transaction, until a checkpoint completes (_checkpoint).
        self._checkpoint_owed = False

    def error(self, action: str, error: BaseException) -> StoreError:
        """The StoreError for error, met trying to action ("open", "read", "write") the file."""
        return StoreError(f"cannot {action} store {self.path}: {error}")

    async def open(self) -> None:
        try:
            await self.run(self._open)
        except (sqlite3.Error, OSError) as error:
            raise self.error("open", error) from error

    async def close(self) -> None:
        if self.connection is not None:
            await self.run(self.connection.close)
            self.connection = None
        self._thread.shutdown(wait=True)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """function(*args) on the file's thread; its errors as it raised them."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    # -- on the file's thread ----------------------------------------------------

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """work(connection) in one transaction, committed if it returns. BEGIN
        IMMEDIATE takes the write lock at once, so that a process sharing the
        file waits for it at the start rather than failing at the end."""
        assert self.connection is not None
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            self._checkpoint_owed = True
            self._checkpoint()
            raise
        if self._checkpoint_owed:
            self._checkpoint()
        return result

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
        self.connection = connection

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
            tables = _tables(connection)
            if tables and "schema_version" not in tables:
                raise sqlite3.DatabaseError(
                    f"it holds tables ({', '.join(sorted(tables))}) but no schema version: "
                    "it is not a store"
                )
            if tables:
                self._check_tables(tables, self._schema_version(connection))
        finally:
            connection.close()

    def _check_tables(self, tables: set[str], version: int) -> None:
        """Refuse a store of another kind (the other store's file, say): it
        lacks tables this store's migrations make at its version."""
        expected = sqlite3.connect(":memory:")
        try:
            expected.execute(_VERSION_TABLE)
            self._migrate_from(expected, 0, version)
            missing = _tables(expected) - tables
        finally:
            expected.close()
        if missing:
            raise sqlite3.DatabaseError(
                f"it holds tables ({', '.join(sorted(tables))}) but not "
                f"{', '.join(sorted(missing))}: it is not this kind of store"
            )

    def _migrate(self, connection: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE takes the write lock at once: a read-only file fails
        # here, at start-up, not on the first request.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(_VERSION_TABLE)
            version = self._schema_version(connection)
            newest = len(self._migrations)
            if version < newest:
                self._migrate_from(connection, version, newest)
                connection.execute("DELETE FROM schema_version")
                connection.execute("INSERT INTO schema_version VALUES (?)", (newest,))
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise

    def _migrate_from(self, connection: sqlite3.Connection, version: int, to: int) -> None:
        """The schema's statements from version to version to (not recording it)."""
        for statements in self._migrations[version:to]:
            for statement in statements:
                connection.execute(statement)

    def _schema_version(self, connection: sqlite3.Connection) -> int:
        """The stored schema's version (0 for none yet); refuses a newer one."""
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(self._migrations):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this program's {len(self._migrations)}"
            )
        return version

    def _checkpoint(self) -> None:
        """Move what the WAL holds into the file and truncate the WAL, so that
        space freed on a full disk goes to the next commits rather than to a WAL
        growing back into it. On a disk still full it fails, as it must grow the
        file; it stays owed, and is tried after each commit until it completes."""
        assert self.connection is not None
        with contextlib.suppress(sqlite3.Error):
            busy, _, _ = self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            # busy: a reader held the WAL, so it was not truncated.
            self._checkpoint_owed = busy != 0


class Pending(Protocol):
    """What a GroupCommit queues: one writer's work, and its answer."""

    @property
    def done(self) -> asyncio.Future[Any]: ...


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """Writes what is queued in batches: everything queued while one batch is
    being written is written together in the next, by write(batch) on the
    file's thread, in one transaction (SqliteFile.transaction). Once it
    returns, committed(batch) answers the batch's writers; if it raised a
    database error, every writer of the batch gets it as a StoreError naming
    the file: nothing of the batch was written. A writer that stops waiting
    (its done cancelled) withdraws nothing."""

    def __init__(
        self,
        file: SqliteFile,
        write: Callable[[list[P]], None],
        committed: Callable[[list[P]], None],
        observe: CommitObserver | None = None,
    ) -> None:
        self._file = file
        self._write = write
        self._committed = committed
        self._observe = observe
        self._pending: list[P] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, pending: P) -> None:
        self._pending.append(pending)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())

    async def finish(self) -> None:
        """Wait until everything queued is written."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                started = time.perf_counter()
                try:
                    await self._file.run(self._write, batch)
                except sqlite3.Error as error:
                    failure = self._file.error("write", error)
                    for pending in batch:
                        if not pending.done.done():
                            pending.done.set_exception(failure)
                    continue
                if self._observe is not None:
                    self._observe(time.perf_counter() - started, len(batch))
                self._committed(batch)
        finally:
            self._writer = None


def _tables(connection: sqlite3.Connection) -> set[str]:
    return {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }


def _roll_back(connection: sqlite3.Connection) -> None:
    """End a failed transaction. SQLite ends some itself (a full disk does), and
    a failing ROLLBACK must not hide the error that failed the transaction."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def sync_directory(directory: Path) -> None:
    """Make the renames and creations in directory durable: after a crash,
    they are found done."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
