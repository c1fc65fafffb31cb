"""The durable core's second seam: a LogStore owns append-only logs.

A log is named (space, name): a space is one kind of log (an order's events,
an order's proposals, the request ids a service has seen), a name one log of
that kind (an order's id). Each entry has a sequence, 1, 2, 3 … with no gaps
whichever process appended it, and an optional key that makes its append
idempotent within its log. A log can be closed (no entry is appended after
the one that closed it) and removed (its entries deleted, a tombstone kept
when asked, so that the name is told apart from one never used).

Like a JobStore, a LogStore is shared: replicas over one PostgreSQL database
append to and watch the same logs. MemoryLogStore keeps them in this process,
SqliteLogStore in a file, PostgresLogStore in a database; all three pass one
contract suite (tests/core/test_log_store_contract.py). Times are passed in
(`now`), never read by the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from queues.core.changes import LogChange, Subscription
from queues.errors import QueueError


@dataclass(frozen=True, slots=True)
class LogEntry:
    space: str
    name: str
    #: Its place in its log: 1 for the first entry, no gaps.
    seq: int
    #: What makes its append idempotent within its log; "" for none.
    key: str
    #: Anything JSON holds; the store keeps it as JSON.
    body: Any
    created_at: float


@dataclass(frozen=True, slots=True)
class Appended:
    entry: LogEntry
    #: False when the key was in the log already and entry is the one it made then.
    created: bool


@dataclass(frozen=True, slots=True)
class LogHead:
    """A log as a whole, without its entries."""

    #: The seq of its last entry; 0 while it has none.
    last_seq: int
    #: When its first entry was appended, or it was closed, whichever came first.
    created_at: float
    #: When it was closed; None while entries may still be appended.
    closed_at: float | None
    #: When it was removed; None unless it is a tombstone (its entries are gone).
    removed_at: float | None


@dataclass(frozen=True, slots=True)
class LogTotals:
    """A space's logs counted exactly, tombstones excluded."""

    logs: int
    entries: int
    #: Up to the asked number of (name, entries) with the most entries: most
    #: first, then by name.
    busiest: list[tuple[str, int]]


class LogClosedError(QueueError):
    """The log is closed: nothing more is appended to it."""

    def __init__(self, space: str, name: str) -> None:
        super().__init__(f"{space} log {name!r} is closed")
        self.space = space
        self.name = name


class LogFullError(QueueError):
    """The log holds as many entries as the append allowed (its limit)."""

    def __init__(self, space: str, name: str, limit: int) -> None:
        super().__init__(f"{space} log {name!r} holds {limit} entries, its limit")
        self.space = space
        self.name = name
        self.limit = limit


class LogRemovedError(QueueError):
    """The log was removed and its tombstone is kept: its name is not reused."""

    def __init__(self, space: str, name: str) -> None:
        super().__init__(f"{space} log {name!r} was removed")
        self.space = space
        self.name = name


class LogStore(Protocol):
    #: What errors call the store: its file or database.
    name: str

    async def open(self) -> None:
        """Make the store ready, creating or migrating its schema. Raises
        StoreError naming the store if it cannot be used."""

    async def close(self) -> None:
        """Finish what is under way, then release the store."""

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
        """Append an entry at the log's next seq, creating the log if it has
        none; close closes the log with it. A key already in the log answers
        its entry (created False), whatever the log's state: nothing is
        written. Otherwise raises LogRemovedError for a tombstone,
        LogClosedError for a closed log and LogFullError when the log holds
        limit entries already."""

    async def close_log(self, space: str, name: str, *, now: float) -> LogHead:
        """Close the log, creating it empty if it has no head; closing a closed
        log changes nothing. Raises LogRemovedError for a tombstone."""

    async def head(self, space: str, name: str) -> LogHead | None:
        """The log's head; None for a name never used (or removed without a
        tombstone, or whose tombstone was forgotten)."""

    async def read(self, space: str, name: str, *, after: int, limit: int) -> list[LogEntry]:
        """Up to limit entries with seq above after, in seq order."""

    async def find(self, space: str, name: str, key: str) -> LogEntry | None:
        """The entry appended with key, if the log has one."""

    def watch(
        self, space: str, name: str
    ) -> contextlib.AbstractContextManager[Subscription[LogChange]]:
        """While the context lasts, a LogChange for each append to, close of and
        removal of the log, made by any process over this store. A watcher
        reads the log itself for the rest, after subscribing, since changes
        may be coalesced or lost on a reconnect."""

    async def closed_before(self, space: str, before: float, *, limit: int) -> list[str]:
        """Up to limit names of logs in space closed before before (not
        tombstones), oldest closed first: the retention sweep's candidates."""

    async def remove(self, space: str, names: Sequence[str], *, now: float, tombstone: bool) -> int:
        """Delete the named logs' entries, keeping each head as a tombstone
        (removed_at now) when tombstone, else the head too; answers how many
        logs were removed. Names with no head, or tombstones already, are
        skipped."""

    async def forget_removed(self, space: str, removed_before: float, *, limit: int) -> int:
        """Delete up to limit tombstones of space removed before removed_before;
        answers how many."""

    async def totals(self, space: str, *, busiest: int) -> LogTotals:
        """The space's logs and entries, counted exactly without scanning the
        entries, and its busiest logs."""
