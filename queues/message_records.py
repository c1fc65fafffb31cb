"""Messages as records of an earlier release's journal (the journaled quote
queue), and back: what quote_svc/journal_import.py reads.

A message is one record in the "messages" collection, keyed by its creation
sequence so that load() returns messages in creation (FIFO) order. Its
"version" field (records.py) is the shape below: version 1.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic

from queues.codec import Codec
from queues.message import (
    Message,
    MessageStatus,
    P,
    Priority,
    R,
    Review,
    ReviewDecision,
)
from queues.records import VERSION, check, field, version_of
from queues.storage import Put

COLLECTION = "messages"
#: The version of the shape put() writes.
RECORD_VERSION = 1


def key(message: Message[Any, Any]) -> str:
    return f"{message.seq:016d}"


@dataclass(frozen=True, slots=True)
class MessageCodec(Generic[P, R]):
    payload: Codec[P]
    result: Codec[R]

    def put(self, message: Message[P, R], request: RequestFacts | None) -> Put:
        """The record of message as it is now, with the facts of the request
        that created it (for answering a repeated request_id after a restart)."""
        review = message.review
        return Put(
            COLLECTION,
            key(message),
            {
                VERSION: RECORD_VERSION,
                "id": message.id,
                "seq": message.seq,
                "payload": self.payload.encode(message.payload),
                "priority": int(message.priority),
                "status": message.status.value,
                "created_at": message.created_at,
                "max_retries": message.max_retries,
                "attempt_timeout": message.attempt_timeout,
                "request_id": message.request_id,
                "request": None if request is None else request.to_json(),
                "started_at": message.started_at,
                "completed_at": message.completed_at,
                "error_message": message.error_message,
                "retry_count": message.retry_count,
                "next_attempt_at": message.next_attempt_at,
                "result": None if message.result is None else self.result.encode(message.result),
                "review_reason": message.review_reason,
                "review": None
                if review is None
                else [review.decision.value, review.reviewer, review.note, review.reviewed_at],
                "dead_lettered": message.dead_lettered,
            },
        )

    def message(
        self, key: str, record: dict[str, Any]
    ) -> tuple[Message[P, R], RequestFacts | None]:
        """The message the record at key holds. Raises FieldError, ValueError or whatever
        the codecs raise for a record this program did not write."""
        version_of(record, RECORD_VERSION)
        status = field(record, "status", MessageStatus)
        result = field(record, "result", object, nullable=True)
        review = field(record, "review", list, nullable=True, length=4)
        message: Message[P, R] = Message(
            id=field(record, "id", str),
            seq=field(record, "seq", int, minimum=1),
            payload=self.payload.decode(field(record, "payload", object)),
            priority=field(record, "priority", Priority),
            # PROCESSING is never written; should a record say so, the attempt
            # it names died with the process that ran it.
            status=MessageStatus.PENDING if status is MessageStatus.PROCESSING else status,
            created_at=field(record, "created_at", float),
            max_retries=field(record, "max_retries", int, minimum=0),
            attempt_timeout=field(record, "attempt_timeout", float, minimum=0),
            request_id=field(record, "request_id", str),
            started_at=field(record, "started_at", float, nullable=True),
            completed_at=field(record, "completed_at", float, nullable=True),
            error_message=field(record, "error_message", str),
            retry_count=field(record, "retry_count", int, minimum=0),
            next_attempt_at=field(record, "next_attempt_at", float, nullable=True),
            result=None if result is None else self.result.decode(result),
            review_reason=field(record, "review_reason", str),
            review=None
            if review is None
            else Review(
                check(review[0], ReviewDecision, "review[0]"),
                check(review[1], str, "review[1]"),
                check(review[2], str, "review[2]"),
                check(review[3], float, "review[3]"),
            ),
            dead_lettered=field(record, "dead_lettered", bool),
        )
        request = field(record, "request", list, nullable=True, length=3)
        return message, None if request is None else RequestFacts.from_json(request)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a submission with a request_id answered, to answer its repeats alike."""

    fingerprint: Hashable
    position: int
    estimated_seconds: float

    def to_json(self) -> list[Any]:
        return [self.fingerprint, self.position, self.estimated_seconds]

    @classmethod
    def from_json(cls, data: list[Any]) -> RequestFacts:
        """Raises FieldError (records.py) for an item of the wrong type."""
        return cls(
            check(data[0], str, "request[0]"),
            check(data[1], int, "request[1]", minimum=0),
            check(data[2], float, "request[2]", minimum=0),
        )
