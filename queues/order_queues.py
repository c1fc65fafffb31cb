"""Per-order event logs, each followed by any number of watchers (fan-out), kept
in a store so that they outlive the process.

Each order has an append-only log; an event's sequence is its position in
it (1, 2, 3 … with no gaps). Watchers hold no copy of the events: each keeps
only a cursor into the shared log and, when it has caught up, waits on the
log's wake-up event, which the next append sets and drops. An idle watcher
therefore costs one suspended generator and one waiter future, and cancelling
it removes only its own future.

Durability: every change to an order is made under that order's lock, and is
committed to the store before it is applied in memory, so the store's order of
changes is memory's, sequences are handed out once each, and a change whose
commit fails (StoreError) leaves memory as it was. Each commit-then-apply runs
as a shielded step (queues.shielded): cancelling the caller cannot leave a
committed change unapplied. start() rebuilds every log from the store.

Asking about an order creates nothing that stays: a watcher of an order that
has no event yet waits on a log that exists only while someone watches it and
goes when the last such watcher leaves, and how many such orders may be
watched at once is bounded (max_awaited_orders). A change that could not be
committed leaves no log behind either.

A removed order leaves a tombstone (with tombstone_retention > 0): for that
long, its id is refused with ExpiredError rather than taken for a new empty
order, so a watcher that comes back to it, even from sequence 0 or after a
restart, learns it is gone instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from queues.codec import Codec, JsonCodec
from queues.errors import (
    CursorOutOfRangeError,
    ExpiredError,
    InvalidStateError,
    WatchLimitError,
)
from queues.keyed_lock import KeyedLock
from queues.order_events import (
    EVENTS,
    OrderEvent,
    OrderEventKind,
    event_from_record,
    event_key,
    event_put,
)
from queues.order_tombstones import (
    TOMBSTONES,
    tombstone_delete,
    tombstone_from_record,
    tombstone_put,
)
from queues.records import load_records
from queues.shielded import ShieldedSteps
from queues.storage import Change, Delete, MemoryStore, Store, StoreError

__all__ = [
    "OrderEvent",
    "OrderEventKind",
    "OrderQueue",
    "OrderQueueManager",
    "OrderRemovalListener",
    "OrderStats",
    "order_queue_manager",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_JSON_CODEC = JsonCodec()
#: Seconds a watch refused for too many awaited orders is told to wait.
AWAITED_RETRY_AFTER = 1.0
#: Tombstones deleted per commit by a sweep.
_TOMBSTONE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class OrderStats:
    """A bounded summary of the orders, whatever their number."""

    #: Orders with a log, not counting those only watched while they have no event.
    orders: int
    #: Events held by every order together.
    events: int
    #: (order id, events held) of the busiest orders, most events first, then by id.
    busiest: list[tuple[str, int]]
    #: Orders with no event yet that someone watches.
    awaited: int


class OrderQueue(Generic[T]):
    """One order's event log. Read-only to callers: the manager appends to it."""

    __slots__ = (
        "_completion",
        "_events",
        "_read_cursor",
        "_removed",
        "_wake",
        "_watchers",
        "order_req_id",
    )

    def __init__(self, order_req_id: str) -> None:
        self.order_req_id = order_req_id
        self._events: list[OrderEvent[T]] = []
        self._completion: OrderEvent[T] | None = None
        # Created only while someone waits, so a log nobody waits on holds no
        # loop-bound object; set and dropped by the next append.
        self._wake: asyncio.Event | None = None
        self._removed = False
        # How far get_from_order_queue (the legacy single consumer) has read.
        # Kept in memory only: after a restart that reader starts from the first event.
        self._read_cursor = 0
        # Watch iterators on this log now.
        self._watchers = 0

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


class OrderRemovalListener(Protocol):
    """Keeps records in the manager's store that live and die with an order's log."""

    def removal_changes(self, order_req_id: str) -> Sequence[Change]:
        """The changes to commit with the removal of the order's log, in the same
        transaction: usually Deletes of the listener's records of that order."""

    def order_removed(self, order_req_id: str) -> None:
        """The removal is committed and the log is gone from memory: forget the order."""


class OrderQueueManager(Generic[T]):
    """Every order's log, created by its first event, kept until removed or until
    retention seconds after the order was completed. A removed
    order's id is refused for tombstone_retention seconds after (0: none, the
    seed's behaviour: it may be used again at once). At most max_awaited_orders
    orders with no event yet may be watched at once.

    store holds the events (a fresh MemoryStore unless given); it must be open
    before start() and stay open until stop() has returned: the manager neither
    opens nor closes it, since others may keep their records in it too. data_codec
    turns each event's data into JSON and back.
    """

    def __init__(
        self,
        *,
        retention: float = 3600.0,
        sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
        data_codec: Codec[T] = _JSON_CODEC,
        tombstone_retention: float = 0.0,
        max_awaited_orders: int = 1000,
    ) -> None:
        if retention < 0 or tombstone_retention < 0 or sweep_interval <= 0:
            raise ValueError(
                "retention and tombstone_retention must not be negative and "
                "sweep_interval must be positive"
            )
        if max_awaited_orders < 1:
            raise ValueError("max_awaited_orders must be at least 1")
        self.retention = retention
        self.tombstone_retention = tombstone_retention
        self.max_awaited_orders = max_awaited_orders
        #: Where every event is committed before it is appended.
        self.store: Store = MemoryStore() if store is None else store
        self._codec = data_codec
        self._sweep_interval = sweep_interval
        self._clock = clock
        self._queues: dict[str, OrderQueue[T]] = {}
        # (completed_at, log) in completion order; the sweep pops from the left. An
        # entry whose log was removed (or replaced) in the meantime is skipped.
        self._completed: deque[tuple[float, OrderQueue[T]]] = deque()
        # Ids whose log holds nothing committed and exists only for its watchers.
        self._awaited: set[str] = set()
        # Removed order id → when, oldest first.
        self._tombstones: dict[str, float] = {}
        self._events_count = 0
        self._locks = KeyedLock()
        self._steps = ShieldedSteps()
        self._listeners: list[OrderRemovalListener] = []
        # One sweep at a time: a sweep leaves its entry at the deque's left until
        # the entry's removal is committed.
        self._sweeping = asyncio.Lock()
        self._recovered = False
        self._watchers = 0
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Rebuild every order's log from the store (the first time only), then
        start the periodic retention sweep of completed orders. Does nothing if started.

        Call it before any other method when the store may hold events. Raises
        StoreError if the store cannot be read or holds a log with a gap.
        """
        if not self._recovered:
            self._recover(await load_records(self.store, EVENTS, self._event))
            removals = await load_records(self.store, TOMBSTONES, tombstone_from_record)
            # In removal order, which the sweep relies on.
            self._tombstones.update(sorted(removals, key=lambda removal: removal[1]))
            self._recovered = True
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(
                self._sweep_periodically(), name="order-queue-sweep"
            )

    async def stop(self) -> None:
        """Stop the periodic retention sweep and wait for the changes under way to be
        committed and applied; the logs and their watchers are untouched, and the
        store is left open. Does nothing if stopped."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self._steps.wait()

    def add_removal_listener(self, listener: OrderRemovalListener) -> None:
        """Have listener's records of an order removed with the order's log, in its commit."""
        self._listeners.append(listener)

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
        """Append an event with text `message` and return it, once it is committed.

        proposal_id defaults to the part of message before "/". Raises
        InvalidStateError if the order is completed, ExpiredError if it was
        removed (within tombstone_retention), ValueError for kind
        ORDER_COMPLETED (complete_order appends that, once), and StoreError if
        the commit fails, in which case the log is unchanged and the sequence
        is not used.
        """
        if kind is OrderEventKind.ORDER_COMPLETED:
            raise ValueError("append ORDER_COMPLETED through complete_order")

        async def append() -> OrderEvent[T]:
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
            await self._commit_append(queue, event)
            return event

        return await self._steps.run(self._holding(order_req_id, append))

    async def complete_order(self, order_req_id: str) -> OrderEvent[T]:
        """Append the ORDER_COMPLETED event (creating the order if need be) and
        return it once committed; on an order already completed, return the same
        event. Raises ExpiredError if the order was removed (within
        tombstone_retention), and StoreError if the commit fails, leaving the
        order open."""

        async def complete() -> OrderEvent[T]:
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
            await self._commit_append(queue, event)
            return event

        return await self._steps.run(self._holding(order_req_id, complete))

    async def remove_order_queue(self, order_req_id: str) -> bool:
        """Drop the order's log; returns whether there was one.

        Its records, and those its removal listeners keep with it, are deleted
        (and its tombstone written) in one commit first; only then is the log
        dropped from memory, so a StoreError leaves everything in place. Its
        watchers still get the events already in it; then a watcher that has
        not seen ORDER_COMPLETED raises ExpiredError, and a waiting
        get_from_order_queue answers None.
        """
        return await self._steps.run(self._remove(order_req_id, None))

    async def sweep_expired(self) -> int:
        """Remove orders completed at least retention seconds ago, as
        remove_order_queue does, oldest first, and forget the tombstones older
        than tombstone_retention; returns how many orders were removed. On
        StoreError the orders and tombstones not yet removed stay for the next
        sweep."""
        async with self._sweeping:
            cutoff = self._clock() - self.retention
            removed = 0
            while self._completed and self._completed[0][0] <= cutoff:
                queue = self._completed[0][1]
                if await self._steps.run(self._remove(queue.order_req_id, queue)):
                    removed += 1
                self._completed.popleft()
            await self._forget_tombstones(self._clock() - self.tombstone_retention)
            return removed

    # -- reading ---------------------------------------------------------------

    async def watch(
        self, order_req_id: str, after_sequence: int = 0
    ) -> AsyncIterator[OrderEvent[T]]:
        """Yield every event with a sequence greater than after_sequence, those
        already in the log first, then new ones as they are appended; end after
        ORDER_COMPLETED. Every watcher sees every event.

        An order with no event yet is waited for; its log exists only while
        someone watches it. From its first step, raises ValueError if
        after_sequence is negative, ExpiredError if the order was removed
        (within tombstone_retention) or is removed before it completes,
        WatchLimitError if the order has no event and max_awaited_orders others
        without one are watched already, and CursorOutOfRangeError if
        after_sequence is beyond the last event (a cursor this log never handed
        out: it must come from a removed one).
        """
        if after_sequence < 0:
            raise ValueError(f"after_sequence must not be negative; got {after_sequence}")
        queue = self._queues.get(order_req_id)
        if queue is None:
            self.refuse_if_expired(order_req_id)
            if after_sequence > 0:
                raise CursorOutOfRangeError("order", order_req_id, after_sequence, 0)
            queue = self._await(order_req_id)
        elif after_sequence > len(queue):
            raise CursorOutOfRangeError("order", order_req_id, after_sequence, len(queue))
        self._watchers += 1
        queue._watchers += 1
        try:
            cursor = after_sequence
            while True:
                await queue._wait_beyond(cursor)
                if len(queue) <= cursor:
                    if queue.completion is not None:
                        return
                    raise ExpiredError("order", order_req_id)
                event = queue._events[cursor]
                cursor += 1
                yield event
                if event.kind is OrderEventKind.ORDER_COMPLETED:
                    return
        finally:
            self._watchers -= 1
            queue._watchers -= 1
            awaited = order_req_id in self._awaited and self._queues.get(order_req_id) is queue
            if awaited and not queue._watchers:
                self._awaited.discard(order_req_id)
                del self._queues[order_req_id]

    async def get_from_order_queue(
        self,
        order_req_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the seed's signature
    ) -> str | None:
        """The seed's single-consumer read: the text of the next event not yet
        read through this method, waiting up to `timeout` seconds (None: as
        long as it takes). Returns None on timeout, and at once when nothing
        more can arrive (the order is completed and fully read, or removed).
        Creates the order's log if there is none. Its cursor is not durable:
        after a restart it reads from the first event again."""
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
        """The order's log, created (empty) if there is none, and no longer one
        that only watchers keep: for a change about to be committed, and for the
        seed's reader, whose empty log stays until removed. An empty log has no
        records, so creating one commits nothing. ExpiredError if the order was
        removed (within tombstone_retention)."""
        queue = self._queues.get(order_req_id)
        if queue is None:
            self.refuse_if_expired(order_req_id)
            queue = self._queues[order_req_id] = OrderQueue(order_req_id)
        self._awaited.discard(order_req_id)
        return queue

    def find_order_queue(self, order_req_id: str) -> OrderQueue[T] | None:
        """The order's log, or None; never creates one."""
        return self._queues.get(order_req_id)

    def has_order_queue(self, order_req_id: str) -> bool:
        """Whether the order has a log (not one its watchers keep while it has no
        event); never creates one."""
        return order_req_id in self._queues and order_req_id not in self._awaited

    def refuse_if_expired(self, order_req_id: str) -> None:
        """ExpiredError if the order was removed within tombstone_retention."""
        if order_req_id in self._tombstones:
            raise ExpiredError("order", order_req_id)

    @property
    def watchers_count(self) -> int:
        """Watch iterators that have started and not yet ended or been closed."""
        return self._watchers

    def get_queue_stats(self) -> dict[str, Any]:
        """{'order_queues_count': orders held, 'queues': {order id: events held}}:
        the seed's, as large as the number of orders; stats() is bounded."""
        return {
            "order_queues_count": len(self._queues),
            "queues": {order_id: len(queue) for order_id, queue in self._queues.items()},
        }

    def stats(self, busiest: int) -> OrderStats:
        """Totals, and the `busiest` orders holding the most events."""
        held = (
            (order_id, len(queue))
            for order_id, queue in self._queues.items()
            if order_id not in self._awaited
        )
        return OrderStats(
            orders=len(self._queues) - len(self._awaited),
            events=self._events_count,
            busiest=heapq.nsmallest(busiest, held, key=lambda item: (-item[1], item[0])),
            awaited=len(self._awaited),
        )

    # -- inside the steps --------------------------------------------------------

    async def _holding(self, order_req_id: str, change: Callable[[], Awaitable[R]]) -> R:
        async with self._locks.hold(order_req_id):
            return await change()

    def _await(self, order_req_id: str) -> OrderQueue[T]:
        """A log for watchers of an order with no log: WatchLimitError past the bound."""
        if len(self._awaited) >= self.max_awaited_orders:
            raise WatchLimitError(self.max_awaited_orders, AWAITED_RETRY_AFTER)
        queue = self._queues[order_req_id] = OrderQueue(order_req_id)
        self._awaited.add(order_req_id)
        return queue

    def _unclaim(self, queue: OrderQueue[T]) -> None:
        """After a change that could not be committed: a log still empty goes,
        unless watched, in which case it is awaited again."""
        if len(queue) or self._queues.get(queue.order_req_id) is not queue:
            return
        if queue._watchers:
            self._awaited.add(queue.order_req_id)
        else:
            del self._queues[queue.order_req_id]

    async def _commit_append(self, queue: OrderQueue[T], event: OrderEvent[T]) -> None:
        try:
            await self.store.commit([event_put(event, self._codec)])
        except BaseException:
            self._unclaim(queue)
            raise
        queue._append(event)
        self._events_count += 1
        if event.kind is OrderEventKind.ORDER_COMPLETED:
            self._completed.append((event.created_at, queue))

    async def _remove(self, order_req_id: str, expected: OrderQueue[T] | None) -> bool:
        """Remove the order's log (only if it is expected, when given)."""
        async with self._locks.hold(order_req_id):
            queue = self._queues.get(order_req_id)
            if (
                queue is None
                or order_req_id in self._awaited
                or (expected is not None and queue is not expected)
            ):
                return False
            changes: list[Change] = [
                Delete(EVENTS, event_key(order_req_id, sequence))
                for sequence in range(1, len(queue) + 1)
            ]
            for listener in self._listeners:
                changes.extend(listener.removal_changes(order_req_id))
            removed_at = self._clock()
            if self.tombstone_retention > 0:
                changes.append(tombstone_put(order_req_id, removed_at))
            await self.store.commit(changes)
            del self._queues[order_req_id]
            self._awaited.discard(order_req_id)
            self._events_count -= len(queue)
            if self.tombstone_retention > 0:
                self._tombstones[order_req_id] = removed_at
            queue._remove()
            for listener in self._listeners:
                listener.order_removed(order_req_id)
            return True

    def _event(self, key: str, record: dict[str, Any]) -> OrderEvent[T]:
        return event_from_record(record, self._codec)

    def _recover(self, stored: list[OrderEvent[T]]) -> None:
        logs: dict[str, list[OrderEvent[T]]] = {}
        # Records come in key order, which is each order's sequence order.
        for event in stored:
            logs.setdefault(event.order_req_id, []).append(event)
        completed: list[tuple[float, OrderQueue[T]]] = []
        for order_req_id, events in logs.items():
            if [event.sequence for event in events] != list(range(1, len(events) + 1)):
                raise StoreError(
                    f"the stored log of order {order_req_id!r} is not numbered 1 to {len(events)}"
                )
            queue = self.get_order_queue(order_req_id)
            # A log appended to before start() was committed by this manager:
            # memory holds the stored events already.
            if len(queue):
                continue
            for event in events:
                queue._append(event)
            self._events_count += len(events)
            if queue.completion is not None:
                completed.append((queue.completion.created_at, queue))
        self._completed = deque(sorted([*self._completed, *completed], key=lambda e: e[0]))

    async def _forget_tombstones(self, cutoff: float) -> None:
        """Delete the tombstones of orders removed at or before cutoff, oldest first."""
        while True:
            # Oldest first: the dict is in removal order.
            expired = list(
                itertools.islice(
                    itertools.takewhile(
                        lambda removal: removal[1] <= cutoff, self._tombstones.items()
                    ),
                    _TOMBSTONE_BATCH,
                )
            )
            if not expired:
                return
            await self.store.commit([tombstone_delete(order_req_id) for order_req_id, _ in expired])
            for order_req_id, _ in expired:
                del self._tombstones[order_req_id]

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                removed = await self.sweep_expired()
            except StoreError:
                log.exception("removing completed orders failed; the next sweep retries")
                continue
            if removed:
                log.info("retention sweep removed %d completed orders", removed)


#: The seed's shared manager; services construct their own.
order_queue_manager: OrderQueueManager[Any] = OrderQueueManager()
