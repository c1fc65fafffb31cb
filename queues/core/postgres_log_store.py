"""A LogStore in a PostgreSQL database, which many replicas share (asyncpg).

A log's head row is its lock: an append locks it (FOR UPDATE), so appends to
one log from any replica take turns and draw seq last_seq + 1, gapless, while
appends to different logs run side by side. Each append, close and removal
NOTIFYs in its transaction, so every replica's watchers hear it at commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
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
from queues.core.postgres_database import DatabaseStore

if TYPE_CHECKING:
    from queues.core.postgres_database import Connection

#: Where the database announces log changes, as JSON [space, name, seq].
CHANNEL = "quoteflow_logs"

#: Each entry migrates the schema one version up. Append; never edit a released entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE log_heads (
            space text NOT NULL,
            name text NOT NULL,
            last_seq bigint NOT NULL,
            created_at double precision NOT NULL,
            closed_at double precision,
            removed_at double precision,
            PRIMARY KEY (space, name)
        )""",
        # closed_before's and forget_removed's candidates, oldest first.
        """CREATE INDEX log_heads_closed ON log_heads (space, closed_at)
            WHERE closed_at IS NOT NULL AND removed_at IS NULL""",
        """CREATE INDEX log_heads_removed ON log_heads (space, removed_at)
            WHERE removed_at IS NOT NULL""",
        # totals' busiest logs.
        """CREATE INDEX log_heads_busiest ON log_heads (space, last_seq DESC, name)
            WHERE removed_at IS NULL""",
        """CREATE TABLE log_entries (
            space text NOT NULL,
            name text NOT NULL,
            seq bigint NOT NULL,
            key text NOT NULL,
            -- json keeps the text as written (see the jobs table).
            body json,
            created_at double precision NOT NULL,
            PRIMARY KEY (space, name, seq)
        )""",
        "CREATE UNIQUE INDEX log_entries_key ON log_entries (space, name, key) WHERE key <> ''",
        # Counts kept per space, so totals read one row, not every head.
        """CREATE TABLE log_totals (
            space text PRIMARY KEY,
            logs bigint NOT NULL,
            entries bigint NOT NULL
        )""",
    ),
)

_ENTRY_COLUMNS = "space, name, seq, key, body, created_at"
_HEAD_COLUMNS = "last_seq, created_at, closed_at, removed_at"

# "<> ''" implies the predicate of the partial index on keys.
_FIND = f"""SELECT {_ENTRY_COLUMNS} FROM log_entries
    WHERE space = $1 AND name = $2 AND key = $3 AND key <> ''"""
_HEAD = f"SELECT {_HEAD_COLUMNS} FROM log_heads WHERE space = $1 AND name = $2"
# Creates the head if there is none, and locks it either way: the DO UPDATE
# changes nothing but takes the row lock, as FOR UPDATE would.
_LOCK_HEAD = f"""
    INSERT INTO log_heads VALUES ($1, $2, 0, $3, NULL, NULL)
    ON CONFLICT (space, name) DO UPDATE SET last_seq = log_heads.last_seq
    RETURNING {_HEAD_COLUMNS}, xmax = 0 AS made"""
_INSERT_ENTRY = f"""
    INSERT INTO log_entries VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ENTRY_COLUMNS}"""
_ADVANCE = """
    UPDATE log_heads SET last_seq = $3, closed_at = COALESCE(closed_at, $4)
    WHERE space = $1 AND name = $2"""
_CLOSE = f"""
    UPDATE log_heads SET closed_at = $3 WHERE space = $1 AND name = $2 AND closed_at IS NULL
    RETURNING {_HEAD_COLUMNS}"""
_COUNT = """
    INSERT INTO log_totals VALUES ($1, $2, $3)
    ON CONFLICT (space) DO UPDATE
    SET logs = log_totals.logs + excluded.logs, entries = log_totals.entries + excluded.entries"""
_READ = f"""
    SELECT {_ENTRY_COLUMNS} FROM log_entries
    WHERE space = $1 AND name = $2 AND seq > $3 ORDER BY seq LIMIT $4"""
_CLOSED_BEFORE = """
    SELECT name FROM log_heads
    WHERE space = $1 AND closed_at IS NOT NULL AND removed_at IS NULL AND closed_at < $2
    ORDER BY closed_at, name LIMIT $3"""
# Locks the heads in name order, so that two removals never deadlock.
_REMOVING = """
    SELECT name, last_seq FROM log_heads
    WHERE space = $1 AND name = ANY($2::text[]) AND removed_at IS NULL
    ORDER BY name FOR UPDATE"""
_DELETE_ENTRIES = "DELETE FROM log_entries WHERE space = $1 AND name = ANY($2::text[])"
_TOMBSTONE = "UPDATE log_heads SET removed_at = $3 WHERE space = $1 AND name = ANY($2::text[])"
_DELETE_HEADS = "DELETE FROM log_heads WHERE space = $1 AND name = ANY($2::text[])"
_FORGET = """
    DELETE FROM log_heads WHERE (space, name) IN (
        SELECT space, name FROM log_heads
        WHERE space = $1 AND removed_at IS NOT NULL AND removed_at < $2
        ORDER BY removed_at LIMIT $3
        FOR UPDATE SKIP LOCKED
    )"""
_TOTALS = "SELECT logs, entries FROM log_totals WHERE space = $1"
_BUSIEST = """
    SELECT name, last_seq FROM log_heads
    WHERE space = $1 AND removed_at IS NULL AND last_seq > 0
    ORDER BY last_seq DESC, name LIMIT $2"""
_NOTIFY = f"SELECT pg_notify('{CHANNEL}', $1)"


class PostgresLogStore(DatabaseStore):
    def __init__(self, url: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        super().__init__(
            url,
            schema="logs",
            migrations=MIGRATIONS,
            channel=CHANNEL,
            heard=self._heard,
            min_connections=min_connections,
            max_connections=max_connections,
        )
        self._hub: ChangeHub[LogChange] = ChangeHub()

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
        async with self._database.connection("append to") as connection:
            if key:
                # Most repeats are answered by one read, with no lock taken.
                seen = await connection.fetchrow(_FIND, space, name, key)
                if seen is not None:
                    return Appended(_entry(seen), created=False)
            async with connection.transaction():
                head = await connection.fetchrow(_LOCK_HEAD, space, name, now)
                assert head is not None  # an upsert ... RETURNING answers its row
                if key and not head["made"]:
                    seen = await connection.fetchrow(_FIND, space, name, key)
                    if seen is not None:
                        return Appended(_entry(seen), created=False)
                if head["removed_at"] is not None:
                    raise LogRemovedError(space, name)
                if head["closed_at"] is not None:
                    raise LogClosedError(space, name)
                seq = head["last_seq"] + 1
                if limit is not None and seq > limit:
                    raise LogFullError(space, name, limit)
                row = await connection.fetchrow(_INSERT_ENTRY, space, name, seq, key, body, now)
                assert row is not None
                await connection.execute(_ADVANCE, space, name, seq, now if close else None)
                await connection.execute(_COUNT, space, 1 if head["made"] else 0, 1)
                await _announce(connection, space, name, seq)
        return Appended(_entry(row), created=True)

    async def close_log(self, space: str, name: str, *, now: float) -> LogHead:
        async with (
            self._database.connection("close a log of") as connection,
            connection.transaction(),
        ):
            head = await connection.fetchrow(_LOCK_HEAD, space, name, now)
            assert head is not None
            if head["removed_at"] is not None:
                raise LogRemovedError(space, name)
            if head["made"]:
                await connection.execute(_COUNT, space, 1, 0)
            if head["closed_at"] is not None:
                return _head(head)
            closed = await connection.fetchrow(_CLOSE, space, name, now)
            assert closed is not None  # the head is locked, and was open
            await _announce(connection, space, name, closed["last_seq"])
        return _head(closed)

    async def head(self, space: str, name: str) -> LogHead | None:
        async with self._database.connection("read") as connection:
            row = await connection.fetchrow(_HEAD, space, name)
        return None if row is None else _head(row)

    async def read(self, space: str, name: str, *, after: int, limit: int) -> list[LogEntry]:
        async with self._database.connection("read") as connection:
            rows = await connection.fetch(_READ, space, name, after, limit)
        return [_entry(row) for row in rows]

    async def find(self, space: str, name: str, key: str) -> LogEntry | None:
        if not key:
            return None
        async with self._database.connection("read") as connection:
            row = await connection.fetchrow(_FIND, space, name, key)
        return None if row is None else _entry(row)

    def watch(
        self, space: str, name: str
    ) -> contextlib.AbstractContextManager[Subscription[LogChange]]:
        return self._hub.subscribe(log_topic(space, name))

    async def closed_before(self, space: str, before: float, *, limit: int) -> list[str]:
        async with self._database.connection("read") as connection:
            rows = await connection.fetch(_CLOSED_BEFORE, space, before, limit)
        return [row["name"] for row in rows]

    async def remove(self, space: str, names: Sequence[str], *, now: float, tombstone: bool) -> int:
        if not names:
            return 0
        async with (
            self._database.connection("remove logs of") as connection,
            connection.transaction(),
        ):
            heads = await connection.fetch(_REMOVING, space, sorted(set(names)))
            if not heads:
                return 0
            removed = [row["name"] for row in heads]
            await connection.execute(_DELETE_ENTRIES, space, removed)
            if tombstone:
                await connection.execute(_TOMBSTONE, space, removed, now)
            else:
                await connection.execute(_DELETE_HEADS, space, removed)
            entries = sum(row["last_seq"] for row in heads)
            await connection.execute(_COUNT, space, -len(removed), -entries)
            for row in heads:
                await _announce(connection, space, row["name"], row["last_seq"])
        return len(removed)

    async def forget_removed(self, space: str, removed_before: float, *, limit: int) -> int:
        async with self._database.connection("forget removed logs of") as connection:
            status = await connection.execute(_FORGET, space, removed_before, limit)
        # The status is "DELETE <count>".
        return int(status.rpartition(" ")[2])

    async def totals(self, space: str, *, busiest: int) -> LogTotals:
        async with self._database.connection("count") as connection:
            counted = await connection.fetchrow(_TOTALS, space)
            top = await connection.fetch(_BUSIEST, space, busiest) if busiest > 0 else []
        logs, entries = (counted["logs"], counted["entries"]) if counted else (0, 0)
        return LogTotals(
            logs=logs, entries=entries, busiest=[(row["name"], row["last_seq"]) for row in top]
        )

    def _heard(self, payload: str) -> None:
        space, name, seq = orjson.loads(payload)
        self._hub.publish(LogChange(space, name, seq))


async def _announce(connection: Connection, space: str, name: str, seq: int) -> None:
    # NOTIFY refuses a payload of 8000 bytes or more. The services' ids are
    # far shorter (validation.check_id); a longer name is appended unannounced
    # rather than not at all.
    payload = orjson.dumps([space, name, seq]).decode()
    if len(payload.encode()) < 8000:
        await connection.execute(_NOTIFY, payload)


def _entry(row: asyncpg.Record) -> LogEntry:
    return LogEntry(
        space=row["space"],
        name=row["name"],
        seq=row["seq"],
        key=row["key"],
        body=row["body"],
        created_at=row["created_at"],
    )


def _head(row: asyncpg.Record) -> LogHead:
    return LogHead(
        last_seq=row["last_seq"],
        created_at=row["created_at"],
        closed_at=row["closed_at"],
        removed_at=row["removed_at"],
    )
