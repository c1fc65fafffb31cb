"""Codecs for protobuf messages, so the queues can store what the services carry."""

import base64
from typing import Generic, TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class ProtoCodec(Generic[M]):
    """A message as base64 of its wire form: compact, and exact for every field."""

    def __init__(self, message_type: type[M]) -> None:
        self._type = message_type

    def encode(self, value: M) -> str:
        return base64.b64encode(value.SerializeToString(deterministic=True)).decode()

    def decode(self, data: str) -> M:
        return self._type.FromString(base64.b64decode(data))
