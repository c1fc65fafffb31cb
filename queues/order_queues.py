"""Per-order event logs, each followed by any number of watchers (fan-out).

Each order has an append-only log; an event's sequence is its position in
it (1, 2, 3 … with no gaps). Watchers hold no copy of the events: each keeps
only a cursor into the shared log and, when it has caught up, waits on the
log's wake-up event, which the next append sets and drops. An idle watcher
therefore costs one suspended generator and one waiter future, and cancelling
it removes only its own future.

Every method that changes state does so without suspending
(add_to_order_queue is async only for the seed's signature), so each one is
atomic with respect to the others on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from queues.errors import CursorOutOfRangeError, InvalidStateError, NotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")


class OrderEventKind(StrEnum):
    #: A proposal was priced: text "<proposal_id>/New", data holds the quote.
    PROPOSAL_NEW = "proposal_new"
    #: A proposal could not be priced: text "<proposal_id>/Failed", error says why.
    PROPOSAL_FAILED = "proposal_failed"
    #: The order was completed: always the order's last event.
    ORDER_COMPLETED = "order_completed"


@dataclass(frozen=True, slots=True)
class OrderEvent(Generic[T]):
    order_req_id: str
    #: Position in the order's log: 1, 2, 3 … with no gaps.
    sequence: int
    kind: OrderEventKind
    #: The proposal it is about; "" for ORDER_COMPLETED.
    proposal_id: str
    #: The seed's short form, for example "PROP456/New".
    text: str
    #: When it was appended (the manager's clock, epoch seconds).
    created_at: float
    #: What the event carries, for example the priced quote of PROPOSAL_NEW.
    data: T | None = None
    #: Why the proposal failed, for PROPOSAL_FAILED; "" otherwise.
    error: str = ""


class OrderQueue(Generic[T]):
    """One order's event log. Read-only to callers: the manager appends to it."""

    __slots__ = ("_completion", "_events", "_read_cursor", "_removed", "_wake", "order_req_id")

    def __init__(self, order_req_id: str) -> None:
        self.order_req_id = order_req_id
        self._events: list[OrderEvent[T]] = []
        self._completion: OrderEvent[T] | None = None
        # Created only while someone waits, so a log nobody waits on holds no
        # loop-bound object; set and dropped by the next append.
        self._wake: asyncio.Event | None = None
        self._removed = False
        # How far get_from_order_queue (the legacy single consumer) has read.
        self._read_cursor = 0

    def __len__(self) -> int:
        """Events held; also the sequence of the last one (0: none yet)."""
        return len(self._events)

    @property
    def completion(self) -> OrderEvent[T] | None:
        """The ORDER_COMPLETED event, once the order is completed."""
        return self._completion

    def events_after(self, after_sequence: int = 0) -> list[OrderEvent[T]]:
        """A copy of the events with a sequence greater than after_sequence."""
        if after_sequence < 0:
            raise ValueError(f"after_sequence must not be negative; got {after_sequence}")
        return self._events[after_sequence:]

    def _append(self, event: OrderEvent[T]) -> None:
        self._events.append(event)
        if event.kind is OrderEventKind.ORDER_COMPLETED:
            self._completion = event
        self._wake_all()

    def _remove(self) -> None:
        self._removed = True
        self._wake_all()

    def _wake_all(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def _is_ended(self) -> bool:
        """Nothing can be appended any more: completed or removed."""
        return self._completion is not None or self._removed

    async def _wait_beyond(self, count: int) -> None:
        """Return once the log holds more than `count` events or has ended."""
        while len(self._events) <= count and not self._is_ended():
            if self._wake is None:
                self._wake = asyncio.Event()
            await self._wake.wait()


class OrderQueueManager(Generic[T]):
    """Every order's log, created on first use, kept until removed or until
    completed_retention seconds after the order was completed."""

    def __init__(
        self,
        *,
        completed_retention: float = 3600.0,
        cleanup_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if completed_retention < 0 or cleanup_interval <= 0:
            raise ValueError(
                "completed_retention must not be negative and cleanup_interval must be positive"
            )
        self.completed_retention = completed_retention
        self._cleanup_interval = cleanup_interval
        self._clock = clock
        self._queues: dict[str, OrderQueue[T]] = {}
        # (completed_at, log) in completion order; cleanup pops from the left. An
        # entry whose log was removed (or replaced) in the meantime is skipped.
        self._completed: deque[tuple[float, OrderQueue[T]]] = deque()
        self._watchers = 0
        self._cleaner: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start the periodic cleanup of completed orders. Does nothing if started."""
        if self._cleaner is None:
            self._cleaner = asyncio.create_task(
                self._clean_periodically(), name="order-queue-cleanup"
            )

    async def stop(self) -> None:
        """Stop the periodic cleanup; the logs and their watchers are untouched.
        Does nothing if stopped."""
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.gather(self._cleaner, return_exceptions=True)
            self._cleaner = None

    # -- commands --------------------------------------------------------------

    async def add_to_order_queue(
        self,
        order_req_id: str,
        message: str,
        *,
        kind: OrderEventKind = OrderEventKind.PROPOSAL_NEW,
        proposal_id: str | None = None,
        data: T | None = None,
        error: str = "",
    ) -> OrderEvent[T]:
        """Append an event with text `message` and return it.

        proposal_id defaults to the part of message before "/". Raises
        InvalidStateError if the order is completed, and ValueError for kind
        ORDER_COMPLETED (complete_order appends that, once).
        """
        if kind is OrderEventKind.ORDER_COMPLETED:
            raise ValueError("append ORDER_COMPLETED through complete_order")
        queue = self.get_order_queue(order_req_id)
        if queue.completion is not None:
            raise InvalidStateError("order", order_req_id, "completed", "add an event to")
        event: OrderEvent[T] = OrderEvent(
            order_req_id=order_req_id,
            sequence=len(queue) + 1,
            kind=kind,
            proposal_id=message.partition("/")[0] if proposal_id is None else proposal_id,
            text=message,
            created_at=self._clock(),
            data=data,
            error=error,
        )
        queue._append(event)
        return event

    def complete_order(self, order_req_id: str) -> OrderEvent[T]:
        """Append the ORDER_COMPLETED event (creating the order if need be) and
        return it; on an order already completed, return the same event."""
        queue = self.get_order_queue(order_req_id)
        if queue.completion is not None:
            return queue.completion
        event: OrderEvent[T] = OrderEvent(
            order_req_id=order_req_id,
            sequence=len(queue) + 1,
            kind=OrderEventKind.ORDER_COMPLETED,
            proposal_id="",
            text=f"{order_req_id}/Completed",
            created_at=self._clock(),
        )
        queue._append(event)
        self._completed.append((event.created_at, queue))
        return event

    def remove_order_queue(self, order_req_id: str) -> bool:
        """Drop the order's log; returns whether there was one.

        Its watchers still get the events already in it; then a watcher that
        has not seen ORDER_COMPLETED raises NotFoundError, and a waiting
        get_from_order_queue answers None.
        """
        queue = self._queues.pop(order_req_id, None)
        if queue is None:
            return False
        queue._remove()
        return True

    def cleanup_completed(self) -> int:
        """Remove orders completed at least completed_retention seconds ago;
        returns how many were removed."""
        cutoff = self._clock() - self.completed_retention
        removed = 0
        while self._completed and self._completed[0][0] <= cutoff:
            _, queue = self._completed.popleft()
            if self._queues.get(queue.order_req_id) is queue:
                self.remove_order_queue(queue.order_req_id)
                removed += 1
        return removed

    # -- reading ---------------------------------------------------------------

    async def watch(
        self, order_req_id: str, after_sequence: int = 0
    ) -> AsyncIterator[OrderEvent[T]]:
        """Yield every event with a sequence greater than after_sequence, those
        already in the log first, then new ones as they are appended; end after
        ORDER_COMPLETED. Every watcher sees every event.

        Creates the order's log if there is none. From its first step, raises
        ValueError if after_sequence is negative, CursorOutOfRangeError if it is
        beyond the last event (a cursor this log never handed out: it must come
        from a removed one),
        and NotFoundError if the order is removed before it completes.
        """
        if after_sequence < 0:
            raise ValueError(f"after_sequence must not be negative; got {after_sequence}")
        queue = self.get_order_queue(order_req_id)
        if after_sequence > len(queue):
            raise CursorOutOfRangeError("order", order_req_id, after_sequence, len(queue))
        self._watchers += 1
        try:
            cursor = after_sequence
            while True:
                await queue._wait_beyond(cursor)
                if len(queue) <= cursor:
                    if queue.completion is not None:
                        return
                    raise NotFoundError("order queue", order_req_id)
                event = queue._events[cursor]
                cursor += 1
                yield event
                if event.kind is OrderEventKind.ORDER_COMPLETED:
                    return
        finally:
            self._watchers -= 1

    async def get_from_order_queue(
        self,
        order_req_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the seed's signature
    ) -> str | None:
        """The seed's single-consumer read: the text of the next event not yet
        read through this method, waiting up to `timeout` seconds (None: as
        long as it takes). Returns None on timeout, and at once when nothing
        more can arrive (the order is completed and fully read, or removed).
        Creates the order's log if there is none."""
        queue = self.get_order_queue(order_req_id)
        try:
            async with asyncio.timeout(timeout):
                # Several concurrent readers may wake for one event: the loser waits again.
                while len(queue) <= queue._read_cursor:
                    if queue._is_ended():
                        return None
                    await queue._wait_beyond(queue._read_cursor)
        except TimeoutError:
            return None
        event = queue._events[queue._read_cursor]
        queue._read_cursor += 1
        return event.text

    def get_order_queue(self, order_req_id: str) -> OrderQueue[T]:
        """The order's log, created (empty) if there is none."""
        queue = self._queues.get(order_req_id)
        if queue is None:
            queue = self._queues[order_req_id] = OrderQueue(order_req_id)
        return queue

    def has_order_queue(self, order_req_id: str) -> bool:
        """Whether the order has a log; never creates one."""
        return order_req_id in self._queues

    @property
    def watchers_count(self) -> int:
        """Watch iterators that have started and not yet ended or been closed."""
        return self._watchers

    def get_queue_stats(self) -> dict[str, Any]:
        """{'order_queues_count': orders held, 'queues': {order id: events held}}."""
        return {
            "order_queues_count": len(self._queues),
            "queues": {order_id: len(queue) for order_id, queue in self._queues.items()},
        }

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            removed = self.cleanup_completed()
            if removed:
                log.info("cleanup removed %d completed orders", removed)


#: The seed's shared manager; services construct their own.
order_queue_manager: OrderQueueManager[Any] = OrderQueueManager()
