"""A LogStore in this process's memory: the contract's reference in tests, and
the processor's `--store memory`. Bodies are copied through JSON, as a real
store keeps them."""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class _Log:
    created_at: float
    #: Kept when a tombstone drops the entries, so a cursor up to it stays in range.
    last_seq: int = 0
    entries: list[LogEntry] = field(default_factory=list)
    keys: dict[str, LogEntry] = field(default_factory=dict)
    closed_at: float | None = None
    removed_at: float | None = None

    def head(self) -> LogHead:
        return LogHead(self.last_seq, self.created_at, self.closed_at, self.removed_at)


@dataclass
class _Space:
    logs: dict[str, _Log] = field(default_factory=dict)
    #: Entries of the logs that are not tombstones, kept as they change.
    entries: int = 0
    tombstones: int = 0


class MemoryLogStore:
    name = "memory log store"

    def __init__(self) -> None:
        self._spaces: dict[str, _Space] = {}
        self._hub: ChangeHub[LogChange] = ChangeHub()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

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
        logs = self._space(space)
        log = logs.logs.get(name)
        if log is not None:
            if key and key in log.keys:
                return Appended(log.keys[key], created=False)
            if log.removed_at is not None:
                raise LogRemovedError(space, name)
            if log.closed_at is not None:
                raise LogClosedError(space, name)
            if limit is not None and log.last_seq >= limit:
                raise LogFullError(space, name, limit)
        elif limit is not None and limit <= 0:
            raise LogFullError(space, name, limit)
        else:
            log = logs.logs[name] = _Log(created_at=now)
        log.last_seq += 1
        entry = LogEntry(space, name, log.last_seq, key, _copy(body), now)
        log.entries.append(entry)
        logs.entries += 1
        if key:
            log.keys[key] = entry
        if close:
            log.closed_at = now
        self._hub.publish(LogChange(space, name, entry.seq))
        return Appended(entry, created=True)

    async def close_log(self, space: str, name: str, *, now: float) -> LogHead:
        logs = self._space(space)
        log = logs.logs.get(name)
        if log is None:
            log = logs.logs[name] = _Log(created_at=now)
        if log.removed_at is not None:
            raise LogRemovedError(space, name)
        if log.closed_at is None:
            log.closed_at = now
            self._hub.publish(LogChange(space, name, log.last_seq))
        return log.head()

    async def head(self, space: str, name: str) -> LogHead | None:
        log = self._space(space).logs.get(name)
        return None if log is None else log.head()

    async def read(self, space: str, name: str, *, after: int, limit: int) -> list[LogEntry]:
        log = self._space(space).logs.get(name)
        if log is None:
            return []
        return log.entries[max(after, 0) : max(after, 0) + limit]

    async def find(self, space: str, name: str, key: str) -> LogEntry | None:
        log = self._space(space).logs.get(name)
        return None if log is None or not key else log.keys.get(key)

    def watch(
        self, space: str, name: str
    ) -> contextlib.AbstractContextManager[Subscription[LogChange]]:
        return self._hub.subscribe(log_topic(space, name))

    async def closed_before(self, space: str, before: float, *, limit: int) -> list[str]:
        closed = (
            (log.closed_at, name)
            for name, log in self._space(space).logs.items()
            if log.removed_at is None and log.closed_at is not None and log.closed_at < before
        )
        return [name for _, name in heapq.nsmallest(limit, closed)]

    async def remove(self, space: str, names: Sequence[str], *, now: float, tombstone: bool) -> int:
        logs = self._space(space)
        removed = 0
        for name in dict.fromkeys(names):
            log = logs.logs.get(name)
            if log is None or log.removed_at is not None:
                continue
            logs.entries -= len(log.entries)
            removed += 1
            if tombstone:
                log.keys.clear()
                log.entries = []
                log.removed_at = now
                logs.tombstones += 1
            else:
                del logs.logs[name]
            self._hub.publish(LogChange(space, name, log.last_seq))
        return removed

    async def forget_removed(self, space: str, removed_before: float, *, limit: int) -> int:
        logs = self._space(space)
        old = heapq.nsmallest(
            limit,
            (
                (log.removed_at, name)
                for name, log in logs.logs.items()
                if log.removed_at is not None and log.removed_at < removed_before
            ),
        )
        for _, name in old:
            del logs.logs[name]
        logs.tombstones -= len(old)
        return len(old)

    async def totals(self, space: str, *, busiest: int) -> LogTotals:
        logs = self._space(space)
        top = heapq.nsmallest(
            busiest,
            ((-log.last_seq, name) for name, log in logs.logs.items() if log.removed_at is None),
        )
        return LogTotals(
            logs=len(logs.logs) - logs.tombstones,
            entries=logs.entries,
            busiest=[(name, -negated) for negated, name in top],
        )

    def _space(self, space: str) -> _Space:
        found = self._spaces.get(space)
        if found is None:
            found = self._spaces[space] = _Space()
        return found


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))
