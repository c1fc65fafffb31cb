"""The queue the quote servicer calls: what it needs of the durable core's
StoreMessageQueue (queues/store_queue.py), over whichever store, so that the
servicer and its tests depend on the face rather than the class."""

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from queues.core.rate_limits import RateLimit
from queues.message import Message, MessageStatus, NewMessage, Priority, ReviewDecision, Submitted
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
        fairness_key: str = "",
        fairness_weight: float = 1.0,
        run_at: float | None = None,
        delay: float | None = None,
    ) -> QuoteSubmitted: ...

    async def submit_many(self, items: Sequence[NewMessage[QuoteJob]]) -> list[QuoteSubmitted]: ...

    async def run_inline(
        self,
        payload: QuoteJob,
        *,
        priority: Priority,
        attempt_timeout: float | None = None,
        fairness_key: str = "",
    ) -> QuoteMessage: ...

    async def cancel(self, message_id: str) -> QuoteMessage: ...

    async def redrive(self, message_id: str) -> QuoteMessage: ...

    async def review(
        self, message_id: str, decision: ReviewDecision, reviewer: str, note: str = ""
    ) -> QuoteMessage: ...

    async def set_rate_limit(self, fairness_key: str, limit: RateLimit | None) -> None: ...

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

    def watch_stats(self, *, every: float, refresh: float) -> AsyncIterator[QueueStats]: ...
