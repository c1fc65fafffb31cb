"""How a queue turns the values it carries for a service (payloads, results,
event data) into JSON for its store, and back."""

from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Codec(Protocol[T]):
    def encode(self, value: T) -> Any:
        """value as something json.dumps accepts."""

    def decode(self, data: Any) -> T:
        """The value encode(value) came from."""


class JsonCodec:
    """For values that are JSON already."""

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, data: Any) -> Any:
        return data
