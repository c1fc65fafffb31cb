"""What every record a manager keeps in its store has in common: a version,
and a named error when it cannot be read.

Each record carries the version of its shape in its "version" field. A program
that changes a record's shape raises that kind's version and reads the older
shapes by migrating them as it loads them; a record without the field was
written before records had versions, and is version 1. A record that cannot be
read (not JSON, a field missing or of the wrong kind) or that a newer program
wrote ends start-up with a RecordError, which names the store, the collection
and the key in one line, rather than with a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from queues.storage import Store, StoreError

T = TypeVar("T")

#: The field holding a record's version.
VERSION = "version"


class RecordError(StoreError):
    """A record in the store cannot be read by this program."""

    def __init__(self, store: str, collection: str, key: str, reason: str) -> None:
        super().__init__(
            f"cannot read store {store}: record {key!r} of collection {collection!r} {reason}"
        )
        #: The store's name (its file).
        self.store = store
        self.collection = collection
        self.key = key

    @classmethod
    def broken(cls, store: str, collection: str, key: str, error: Exception) -> RecordError:
        """The error for a record whose decoding raised error."""
        if isinstance(error, UnknownVersionError):
            return cls(store, collection, key, str(error))
        return cls(store, collection, key, f"is broken: {type(error).__name__}: {error}")


class UnknownVersionError(ValueError):
    """A record's version is not one this program reads (a newer program wrote it)."""


async def load_records(store: Store, collection: str, decode: Callable[[str, Any], T]) -> list[T]:
    """decode(key, value) of every record of collection, in key order. Raises
    RecordError naming the first record decode raises for, and StoreError if
    the store cannot be read."""
    decoded = []
    for key, value in await store.load(collection):
        try:
            decoded.append(decode(key, value))
        except Exception as error:
            raise RecordError.broken(store.name, collection, key, error) from error
    return decoded


def version_of(record: dict[str, Any], newest: int) -> int:
    """The version record was written in. Raises UnknownVersionError for a version
    newer than `newest`, the one this program writes: it cannot know that shape."""
    version = record.get(VERSION, 1)
    if not isinstance(version, int) or not 1 <= version <= newest:
        raise UnknownVersionError(f"has version {version!r}; this program reads 1 to {newest}")
    return version
