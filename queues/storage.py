"""The records store of earlier releases' journals, and StoreError.

A Store holds JSON records in named collections, each keyed by a string. The
in-memory managers of earlier releases wrote every change that had to survive
a crash through commit() and rebuilt their state from load() at start; the
services now run on the durable core (queues/core) and read such a journal
once, to import it (quote_svc, processor_svc and requestor_svc's
journal_import.py). SqliteStore (storage_sqlite.py) is the journal's file;
MemoryStore keeps records in this process only, for tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from queues.errors import QueueError


@dataclass(frozen=True, slots=True)
class Put:
    """Create or replace one record."""

    collection: str
    key: str
    #: Anything JSON holds: dicts with str keys, lists, str, int, float, bool, None.
    value: Any


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove one record; removing a record that is not there is not an error."""

    collection: str
    key: str


Change = Put | Delete


#: Told of each group commit a store wrote: its seconds and how many writes
#: it carried (a service's metrics). Called on the event loop; must not block.
CommitObserver = Callable[[float, int], None]


class StoreError(QueueError):
    """The store could not be opened, read or written. Names the store (its file)."""


class Store(Protocol):
    #: What errors call the store: its file, for a store kept in one.
    name: str

    async def open(self) -> None:
        """Make the store ready, creating or migrating its schema.

        Raises StoreError naming the store if it cannot be read or written
        (a corrupt or read-only file, say); it never starts over empty.
        """

    async def load(self, collection: str) -> list[tuple[str, Any]]:
        """Every record of collection as (key, value), in key order. Raises
        StoreError if the store cannot be read, and RecordError (records.py) for
        a record that is not JSON."""

    def commit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        """Start applying changes atomically, in order, and answer a future: done
        once they are all durable, failed with StoreError when none of them is.
        Futures are settled in the order their commits were made, so callbacks
        added at once run in that order. Cancelling the future withdraws nothing.
        Concurrent commits may share one transaction (group commit), which
        changes none of this. A future (not a coroutine) lets a hot path act on
        the outcome in a callback, without a task per commit."""

    async def close(self) -> None:
        """Finish the commits under way, then release the store."""


class MemoryStore:
    """A Store in this process's memory, for tests: values are copied through
    JSON, as a real store would."""

    def __init__(self) -> None:
        self.name = "memory store"
        self._collections: dict[str, dict[str, str]] = {}

    async def open(self) -> None:
        return None

    async def load(self, collection: str) -> list[tuple[str, Any]]:
        records = self._collections.get(collection, {})
        return [(key, orjson.loads(records[key])) for key in sorted(records)]

    def commit(self, changes: Sequence[Change]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            encoded = encode(changes)
        except TypeError as error:
            done.set_exception(error)
            return done
        for change, text in zip(changes, encoded, strict=True):
            records = self._collections.setdefault(change.collection, {})
            if text is None:
                records.pop(change.key, None)
            else:
                records[change.key] = text
        done.set_result(None)
        return done

    async def close(self) -> None:
        return None


def encode(changes: Sequence[Change]) -> list[str | None]:
    """Each Put's value as JSON text (None for a Delete). Raises TypeError
    for a value JSON cannot hold, before anything is written.

    orjson rather than json: a message's record encodes in about a tenth of the
    time."""
    return [
        orjson.dumps(change.value).decode() if isinstance(change, Put) else None
        for change in changes
    ]
