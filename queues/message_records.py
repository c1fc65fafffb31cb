"""Messages as store records, and back.

A message is one record in the "messages" collection, keyed by its creation
sequence so that load() returns messages in creation (FIFO) order. Its
"version" field (records.py) is the shape below: version 1.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic

from queues.codec import Codec
from queues.message import Message, MessageStatus, P, Priority, R, Review, ReviewDecision
from queues.records import VERSION, version_of
from queues.storage import Delete, Put

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
        """The message the record at key holds. Raises KeyError, ValueError or whatever
        the codecs raise for a record this program did not write."""
        version_of(record, RECORD_VERSION)
        review = record["review"]
        status = MessageStatus(record["status"])
        message: Message[P, R] = Message(
            id=record["id"],
            seq=record["seq"],
            payload=self.payload.decode(record["payload"]),
            priority=Priority(record["priority"]),
            # PROCESSING is never written; should a record say so, the attempt
            # it names died with the process that ran it.
            status=MessageStatus.PENDING if status is MessageStatus.PROCESSING else status,
            created_at=record["created_at"],
            max_retries=record["max_retries"],
            attempt_timeout=record["attempt_timeout"],
            request_id=record["request_id"],
            started_at=record["started_at"],
            completed_at=record["completed_at"],
            error_message=record["error_message"],
            retry_count=record["retry_count"],
            next_attempt_at=record["next_attempt_at"],
            result=None if record["result"] is None else self.result.decode(record["result"]),
            review_reason=record["review_reason"],
            review=None
            if review is None
            else Review(ReviewDecision(review[0]), review[1], review[2], review[3]),
            dead_lettered=record["dead_lettered"],
        )
        request = record["request"]
        return message, None if request is None else RequestFacts.from_json(request)

    def fingerprint(
        self,
        payload: P,
        priority: Priority,
        max_retries: int | None,
        attempt_timeout: float | None,
    ) -> str:
        """Equal for equal submissions, in this process and the next."""
        canonical = json.dumps(
            [self.payload.encode(payload), int(priority), max_retries, attempt_timeout],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def delete(message: Message[Any, Any]) -> Delete:
    return Delete(COLLECTION, key(message))


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
        return cls(data[0], data[1], data[2])
