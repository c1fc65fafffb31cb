"""The queue the quote servicer calls, over either of its two homes.

With store memory or postgres the queue is the durable core's
(queues/store_queue.py): its state is the store's, shared by every replica.
With store sqlite it is still the journaled queue of earlier releases
(queues/message_queue.py), whose SQLite file existing deployments hold, until
that file's messages move to the core; JournalQueue gives it the same
(awaitable) face.
"""

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from queues.message import Message, MessageStatus, Priority, ReviewDecision
from queues.message_queue import MessageQueue, NewMessage, Submitted
from queues.message_stats import QueueStats
from quote_svc.domain import QuoteResult
from quote_svc.pricing import QuoteJob

QuoteMessage = Message[QuoteJob, QuoteResult]
QuoteSubmitted = Submitted[QuoteJob, QuoteResult]


class QuoteQueue(Protocol):
    async def start(self) -> None: ...

    async def stop(self, grace: float | None = None) -> None: ...

    async def submit(
        self,
        payload: QuoteJob,
        *,
        priority: Priority,
        request_id: str = "",
        max_retries: int | None = None,
        attempt_timeout: float | None = None,
    ) -> QuoteSubmitted: ...

    async def submit_many(self, items: Sequence[NewMessage[QuoteJob]]) -> list[QuoteSubmitted]: ...

    async def run_inline(
        self, payload: QuoteJob, *, priority: Priority, attempt_timeout: float | None = None
    ) -> QuoteMessage: ...

    async def cancel(self, message_id: str) -> QuoteMessage: ...

    async def redrive(self, message_id: str) -> QuoteMessage: ...

    async def review(
        self, message_id: str, decision: ReviewDecision, reviewer: str, note: str = ""
    ) -> QuoteMessage: ...

    async def get(self, message_id: str) -> QuoteMessage: ...

    def watch(self, message_id: str) -> AsyncIterator[QuoteMessage]: ...

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        priority: Priority | None = None,
        dead_lettered_only: bool = False,
        after_seq: int = 0,
        limit: int = 50,
    ) -> tuple[list[QuoteMessage], int | None]: ...

    async def stats(self) -> QueueStats: ...


class JournalQueue:
    """The journaled queue, its reads made awaitable as the core's are."""

    def __init__(self, queue: MessageQueue[QuoteJob, QuoteResult]) -> None:
        self._queue = queue
        self.start = queue.start
        self.stop = queue.stop
        self.submit = queue.submit
        self.submit_many = queue.submit_many
        self.run_inline = queue.run_inline
        self.cancel = queue.cancel
        self.redrive = queue.redrive
        self.review = queue.review
        self.watch = queue.watch

    async def get(self, message_id: str) -> QuoteMessage:
        return self._queue.get(message_id)

    async def list_messages(
        self,
        *,
        status: MessageStatus | None = None,
        priority: Priority | None = None,
        dead_lettered_only: bool = False,
        after_seq: int = 0,
        limit: int = 50,
    ) -> tuple[list[QuoteMessage], int | None]:
        return self._queue.list_messages(
            status=status,
            priority=priority,
            dead_lettered_only=dead_lettered_only,
            after_seq=after_seq,
            limit=limit,
        )

    async def stats(self) -> QueueStats:
        return self._queue.stats()
