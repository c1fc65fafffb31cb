"""What every record kept in a store has in common: a version,
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

import math
import reprlib
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Literal, TypeVar, overload

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
        if isinstance(error, FieldError):
            return cls(store, collection, key, f"is broken: {error}")
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
    if not isinstance(record, dict):
        raise FieldError(f"the record is {_found(record)}, not an object")
    version = record.get(VERSION, 1)
    if type(version) is not int or not 1 <= version <= newest:
        raise UnknownVersionError(f"has version {version!r}; this program reads 1 to {newest}")
    return version


class FieldError(ValueError):
    """A record's field holds a value of the wrong type, or one out of range."""


# What a record's value is called in an error: its JSON name, as a record is JSON.
_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "an array",
}
# An error quotes what it found, cut short: a record may hold megabytes.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 2, 4, 4
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40


def _found(value: object) -> str:
    if value is None:
        return "null"
    return f"{_NAMES.get(type(value), type(value).__name__)} {_SHORT.repr(value)}"


@overload
def field(
    record: Mapping[str, Any],
    name: str,
    kind: type[T],
    *,
    nullable: Literal[False] = False,
    minimum: float | None = None,
    length: int | None = None,
) -> T: ...
@overload
def field(
    record: Mapping[str, Any],
    name: str,
    kind: type[T],
    *,
    nullable: Literal[True],
    minimum: float | None = None,
    length: int | None = None,
) -> T | None: ...
@overload
def field(
    record: Mapping[str, Any],
    name: str,
    kind: type[T],
    *,
    nullable: bool,
    minimum: float | None = None,
    length: int | None = None,
) -> T | None: ...
def field(
    record: Mapping[str, Any],
    name: str,
    kind: type[T],
    *,
    nullable: bool = False,
    minimum: float | None = None,
    length: int | None = None,
) -> T | None:
    """record[name], checked to be a kind: bool, int (not a bool), float (an
    int too; finite), str, dict, list, an Enum (its value's type, then a
    member) or object (anything, for a codec to decode). nullable: None too;
    minimum: no less, for a number; length: that many items, for a list.
    Raises FieldError naming the field, what it expected and (cut short) what
    it found, or that it is missing."""
    if name not in record:
        raise FieldError(f"field {name!r} is missing")
    checked: T | None = check(
        record[name], kind, name, nullable=nullable, minimum=minimum, length=length
    )
    return checked


def check(
    value: Any,
    kind: type,
    name: str,
    *,
    nullable: bool = False,
    minimum: float | None = None,
    length: int | None = None,
) -> Any:
    """value checked as field() checks a record's field; name is what the error
    calls it ("review[0]", say, for an item of a field)."""
    if value is None and nullable:
        return None
    if kind is object:
        # Any JSON at all: what the record's codec decodes, which checks it.
        return value
    if issubclass(kind, Enum):
        return _member(value, kind, name)
    expected = _expected(kind, minimum, length)
    # bool is an int to isinstance, never to a record's reader.
    if isinstance(value, bool) is not (kind is bool) or not isinstance(
        value, (int, float) if kind is float else kind
    ):
        raise FieldError(f"field {name!r} must be {expected}, not {_found(value)}")
    checked: Any = value
    if kind is float:
        checked = float(checked)
    if kind is float and not math.isfinite(checked):
        raise FieldError(f"field {name!r} must be a finite number, not {checked!r}")
    if (minimum is not None and checked < minimum) or (
        length is not None and len(checked) != length
    ):
        raise FieldError(f"field {name!r} must be {expected}, not {_found(checked)}")
    return checked


def _expected(kind: type, minimum: float | None, length: int | None) -> str:
    expected = _NAMES[kind]
    if minimum is not None:
        expected += f" of at least {minimum}"
    if length is not None:
        expected += f" of {length} items"
    return expected


def _member(value: Any, kind: type[Enum], name: str) -> Enum:
    try:
        # bool equals 0 and 1 to an int Enum, never to a record's reader.
        if not isinstance(value, bool):
            return kind(value)
    except ValueError:
        pass
    choices = ", ".join(repr(member.value) for member in kind)
    raise FieldError(f"field {name!r} must be one of {choices}, not {_found(value)}")
