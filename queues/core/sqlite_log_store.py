"""A LogStore in one SQLite file, in WAL mode: the embedded default.

The file, its checks on opening, its migrations and its handling of a full
disk are sqlite_file.SqliteFile's; writes are group-committed, each in its own
SAVEPOINT (sqlite_writes.py). Every statement runs on the file's thread, so
appends to a log are serialised and draw gapless seqs. The file admits one
service (the data-dir lock).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from queues.core.changes import ChangeHub, LogChange, Subscription, log_topic
from queues.core.log_store import (
    Appended,
    LogClosedError,
    LogEntry,
    LogFullError,
    LogHead,
    LogRemovedError,
    LogTotals,
)
from queues.core.sqlite_writes import SqliteAccess
from queues.records import FieldError, RecordError
from queues.sqlite_file import Migrations, SqliteFile
from queues.storage import CommitObserver

T = TypeVar("T")

MIGRATIONS: Migrations = (
    (
        """CREATE TABLE log_heads (
            space TEXT NOT NULL,
            name TEXT NOT NULL,
            last_seq INTEGER NOT NULL,
            created_at REAL NOT NULL,
            closed_at REAL,
            removed_at REAL,
            PRIMARY KEY (space, name)
        )""",
        """CREATE INDEX log_heads_closed ON log_heads (space, closed_at)
            WHERE closed_at IS NOT NULL AND removed_at IS NULL""",
        """CREATE INDEX log_heads_removed ON log_heads (space, removed_at)
            WHERE removed_at IS NOT NULL""",
        """CREATE INDEX log_heads_busiest ON log_heads (space, last_seq DESC, name)
            WHERE removed_at IS NULL""",
        """CREATE TABLE log_entries (
            space TEXT NOT NULL,
            name TEXT NOT NULL,
            seq INTEGER NOT NULL,
            key TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (space, name, seq)
        )""",
        "CREATE UNIQUE INDEX log_entries_key ON log_entries (space, name, key) WHERE key <> ''",
        # Counts kept per space, so totals read one row, not every head.
        """CREATE TABLE log_totals (
            space TEXT PRIMARY KEY,
            logs INTEGER NOT NULL,
            entries INTEGER NOT NULL
        )""",
    ),
)

_ENTRY_COLUMNS = "space, name, seq, key, body, created_at"
_HEAD_COLUMNS = "last_seq, created_at, closed_at, removed_at"
# "<> ''" lets the planner use the partial index on keys, which it cannot
# prove a bound value meets: without it, a scan of the log's every entry.
_FIND = f"""SELECT {_ENTRY_COLUMNS} FROM log_entries
    WHERE space = ? AND name = ? AND key = ? AND key <> ''"""
_HEAD = f"SELECT {_HEAD_COLUMNS} FROM log_heads WHERE space = ? AND name = ?"
_COUNT = """
    INSERT INTO log_totals VALUES (?, ?, ?)
    ON CONFLICT (space) DO UPDATE
    SET logs = logs + excluded.logs, entries = entries + excluded.entries"""


class SqliteLogStore:
    def __init__(self, path: Path, *, commits: CommitObserver | None = None) -> None:
        """commits: told of each group commit (its seconds and size)."""
        self.path = path
        self.name = str(path)
        self._hub: ChangeHub[LogChange] = ChangeHub()
        self._file = SqliteFile(
            path, MIGRATIONS, synchronous="FULL", thread_name=f"sqlite-logs-{path.name}"
        )
        self._access = SqliteAccess(self._file, self._hub, commits)

    async def open(self) -> None:
        await self._access.open()

    async def close(self) -> None:
        await self._access.close()

    async def append(
        self,
        space: str,
        name: str,
        key: str,
        body: Any,
        *,
        now: float,
        limit: int | None = None,
        close: bool = False,
    ) -> Appended:
        encoded = orjson.dumps(body).decode()

        def append(c: sqlite3.Connection) -> Appended:
            if key:
                seen = c.execute(_FIND, (space, name, key)).fetchone()
                if seen is not None:
                    return Appended(self._entry(seen), created=False)
            head = c.execute(_HEAD, (space, name)).fetchone()
            if head is None:
                c.execute(
                    "INSERT INTO log_heads VALUES (?, ?, 0, ?, NULL, NULL)", (space, name, now)
                )
                c.execute(_COUNT, (space, 1, 0))
                last = 0
            else:
                last, _, closed_at, removed_at = head
                if removed_at is not None:
                    raise LogRemovedError(space, name)
                if closed_at is not None:
                    raise LogClosedError(space, name)
            if limit is not None and last >= limit:
                raise LogFullError(space, name, limit)
            row = c.execute(
                f"INSERT INTO log_entries VALUES (?, ?, ?, ?, ?, ?) RETURNING {_ENTRY_COLUMNS}",
                (space, name, last + 1, key, encoded, now),
            ).fetchone()
            c.execute(
                """UPDATE log_heads SET last_seq = ?, closed_at = coalesce(closed_at, ?)
                WHERE space = ? AND name = ?""",
                (last + 1, now if close else None, space, name),
            )
            c.execute(_COUNT, (space, 0, 1))
            return Appended(self._entry(row), created=True)

        return await self._write(
            append,
            lambda done: [LogChange(space, name, done.entry.seq)] if done.created else [],
        )

    async def close_log(self, space: str, name: str, *, now: float) -> LogHead:
        def close(c: sqlite3.Connection) -> tuple[LogHead, bool]:
            head = c.execute(_HEAD, (space, name)).fetchone()
            if head is None:
                c.execute(
                    "INSERT INTO log_heads VALUES (?, ?, 0, ?, ?, NULL)", (space, name, now, now)
                )
                c.execute(_COUNT, (space, 1, 0))
                return LogHead(0, now, now, None), True
            if head[3] is not None:
                raise LogRemovedError(space, name)
            if head[2] is not None:
                return _head(head), False
            c.execute(
                "UPDATE log_heads SET closed_at = ? WHERE space = ? AND name = ?",
                (now, space, name),
            )
            return LogHead(head[0], head[1], now, None), True

        closed, _ = await self._write(
            close, lambda done: [LogChange(space, name, done[0].last_seq)] if done[1] else []
        )
        return closed

    async def head(self, space: str, name: str) -> LogHead | None:
        row = await self._read(lambda c: c.execute(_HEAD, (space, name)).fetchone())
        return None if row is None else _head(row)

    async def read(self, space: str, name: str, *, after: int, limit: int) -> list[LogEntry]:
        rows = await self._read(
            lambda c: c.execute(
                f"""SELECT {_ENTRY_COLUMNS} FROM log_entries
                WHERE space = ? AND name = ? AND seq > ? ORDER BY seq LIMIT ?""",
                (space, name, after, limit),
            ).fetchall()
        )
        return [self._entry(row) for row in rows]

    async def find(self, space: str, name: str, key: str) -> LogEntry | None:
        if not key:
            return None
        row = await self._read(lambda c: c.execute(_FIND, (space, name, key)).fetchone())
        return None if row is None else self._entry(row)

    def watch(
        self, space: str, name: str
    ) -> contextlib.AbstractContextManager[Subscription[LogChange]]:
        return self._hub.subscribe(log_topic(space, name))

    async def closed_before(self, space: str, before: float, *, limit: int) -> list[str]:
        rows = await self._read(
            lambda c: c.execute(
                """SELECT name FROM log_heads
                WHERE space = ? AND closed_at IS NOT NULL AND removed_at IS NULL
                AND closed_at < ? ORDER BY closed_at, name LIMIT ?""",
                (space, before, limit),
            ).fetchall()
        )
        return [name for (name,) in rows]

    async def remove(self, space: str, names: Sequence[str], *, now: float, tombstone: bool) -> int:
        def remove(c: sqlite3.Connection) -> list[tuple[str, int]]:
            removed = []
            for name in dict.fromkeys(names):
                head = c.execute(_HEAD, (space, name)).fetchone()
                if head is None or head[3] is not None:
                    continue
                c.execute("DELETE FROM log_entries WHERE space = ? AND name = ?", (space, name))
                if tombstone:
                    c.execute(
                        "UPDATE log_heads SET removed_at = ? WHERE space = ? AND name = ?",
                        (now, space, name),
                    )
                else:
                    c.execute("DELETE FROM log_heads WHERE space = ? AND name = ?", (space, name))
                c.execute(_COUNT, (space, -1, -head[0]))
                removed.append((name, head[0]))
            return removed

        removed = await self._write(
            remove, lambda done: [LogChange(space, name, seq) for name, seq in done]
        )
        return len(removed)

    async def forget_removed(self, space: str, removed_before: float, *, limit: int) -> int:
        def forget(c: sqlite3.Connection) -> int:
            return c.execute(
                """DELETE FROM log_heads WHERE rowid IN (
                    SELECT rowid FROM log_heads
                    WHERE space = ? AND removed_at IS NOT NULL AND removed_at < ?
                    ORDER BY removed_at LIMIT ?)""",
                (space, removed_before, limit),
            ).rowcount

        return await self._write(forget)

    async def totals(self, space: str, *, busiest: int) -> LogTotals:
        def totals(c: sqlite3.Connection) -> LogTotals:
            counted = c.execute(
                "SELECT logs, entries FROM log_totals WHERE space = ?", (space,)
            ).fetchone()
            top = c.execute(
                """SELECT name, last_seq FROM log_heads
                WHERE space = ? AND removed_at IS NULL AND last_seq > 0
                ORDER BY last_seq DESC, name LIMIT ?""",
                (space, busiest),
            ).fetchall()
            logs, entries = counted if counted else (0, 0)
            return LogTotals(logs, entries, [(name, seq) for name, seq in top])

        return await self._read(totals)

    async def _write(
        self,
        work: Callable[[sqlite3.Connection], T],
        changed: Callable[[T], list[LogChange]] = lambda _: [],
    ) -> T:
        with self._naming_broken_rows():
            return await self._access.write(work, changed)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._naming_broken_rows():
            return await self._access.read(work)

    def _entry(self, row: tuple[Any, ...]) -> LogEntry:
        space, name, seq, key, body, created_at = row
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            where = f"{space}/{name}#{seq}"
            raise _BrokenRowError(where, FieldError(f"body is not JSON: {error}")) from error
        return LogEntry(space, name, seq, key, decoded, created_at)

    @contextlib.contextmanager
    def _naming_broken_rows(self) -> Iterator[None]:
        """An entry that cannot be decoded is raised as the RecordError naming
        the store, the log and the entry, in one line."""
        try:
            yield
        except _BrokenRowError as broken:
            raise RecordError.broken(self.name, "log entries", broken.where, broken.error) from None


class _BrokenRowError(Exception):
    def __init__(self, where: str, error: FieldError) -> None:
        super().__init__(where)
        self.where = where
        self.error = error


def _head(row: tuple[Any, ...]) -> LogHead:
    last_seq, created_at, closed_at, removed_at = row
    return LogHead(last_seq, created_at, closed_at, removed_at)
