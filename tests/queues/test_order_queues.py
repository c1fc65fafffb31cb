"""Per-order event logs: sequences, fan-out watchers that resume without gaps,
completion, the seed's single-consumer read, removal, retention and stats; and
their durability: commit before apply, recovery from the store."""

import asyncio
import gc
import tracemalloc

import pytest
from support.polling import poll
from support.store_doubles import ScriptedStore

from queues.errors import (
    CursorOutOfRangeError,
    ExpiredError,
    InvalidStateError,
    WatchLimitError,
)
from queues.order_events import event_key
from queues.order_queues import (
    OrderEvent,
    OrderEventKind,
    OrderQueueManager,
    OrderStats,
    order_queue_manager,
)
from queues.storage import Delete, MemoryStore, Put, Store, StoreError
from queues.storage_sqlite import SqliteStore


class Follower:
    """A task that watches one order and keeps what it receives."""

    def __init__(
        self, manager: OrderQueueManager[str], order_req_id: str, after_sequence: int = 0
    ) -> None:
        self.events: list[OrderEvent[str]] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._follow(manager, order_req_id, after_sequence))

    async def _follow(self, manager: OrderQueueManager[str], order_req_id: str, after: int) -> None:
        try:
            async for event in manager.watch(order_req_id, after):
                self.events.append(event)
                self._notify()
        finally:
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_count(self, count: int) -> None:
        """Return once `count` events arrived; the watcher then waits for more."""
        while len(self.events) < count and not self.task.done():
            await self._changed.wait()
        assert len(self.events) >= count

    @property
    def sequences(self) -> list[int]:
        return [event.sequence for event in self.events]


@pytest.fixture
def manager() -> OrderQueueManager[str]:
    return OrderQueueManager()


async def add(manager: OrderQueueManager[str], order_req_id: str, count: int) -> None:
    for n in range(count):
        await manager.add_to_order_queue(order_req_id, f"P{n}/New")


async def test_events_are_numbered_from_one_without_gaps():
    now = [500.0]
    manager: OrderQueueManager[str] = OrderQueueManager(clock=lambda: now[0])
    first = await manager.add_to_order_queue("ORD1", "PROP1/New", data="quote 1")
    now[0] = 501.0
    failed = await manager.add_to_order_queue(
        "ORD1", "PROP2/Failed", kind=OrderEventKind.PROPOSAL_FAILED, error="no rate"
    )
    named = await manager.add_to_order_queue("ORD1", "custom text", proposal_id="PROP3")
    other = await manager.add_to_order_queue("ORD2", "PROP9/New")
    done = await manager.complete_order("ORD1")

    assert first == OrderEvent(
        "ORD1", 1, OrderEventKind.PROPOSAL_NEW, "PROP1", "PROP1/New", 500.0, "quote 1"
    )
    assert (failed.sequence, failed.kind, failed.proposal_id, failed.error, failed.data) == (
        2,
        OrderEventKind.PROPOSAL_FAILED,
        "PROP2",
        "no rate",
        None,
    )
    assert (named.sequence, named.proposal_id, named.text) == (3, "PROP3", "custom text")
    assert (other.order_req_id, other.sequence) == ("ORD2", 1)
    assert (done.sequence, done.kind, done.proposal_id, done.text, done.created_at) == (
        4,
        OrderEventKind.ORDER_COMPLETED,
        "",
        "ORD1/Completed",
        501.0,
    )
    queue = manager.get_order_queue("ORD1")
    assert len(queue) == 4
    assert queue.completion == done
    assert [e.sequence for e in queue.events_after(2)] == [3, 4]
    with pytest.raises(ValueError, match="must not be negative"):
        queue.events_after(-1)


async def test_watch_from_the_start_and_from_a_cursor_then_live(manager):
    await add(manager, "ORD", 3)
    from_start = Follower(manager, "ORD")
    from_two = Follower(manager, "ORD", after_sequence=2)
    await from_start.wait_count(3)
    await from_two.wait_count(1)
    await add(manager, "ORD", 2)
    await manager.complete_order("ORD")
    await asyncio.gather(from_start.task, from_two.task)
    assert from_start.sequences == [1, 2, 3, 4, 5, 6]
    assert from_two.sequences == [3, 4, 5, 6]
    assert from_start.events[-1].kind is OrderEventKind.ORDER_COMPLETED
    assert manager.watchers_count == 0


async def test_every_watcher_sees_every_event(manager):
    followers = [Follower(manager, "ORD") for _ in range(3)]
    await manager.add_to_order_queue("ORD", "P0/New")
    for follower in followers:
        await follower.wait_count(1)
    assert manager.watchers_count == 3
    await add(manager, "ORD", 4)
    await manager.complete_order("ORD")
    await asyncio.gather(*(f.task for f in followers))
    expected = manager.get_order_queue("ORD").events_after(0)
    assert [f.events for f in followers] == [expected] * 3
    assert len(expected) == 6


async def test_a_watcher_resuming_from_its_last_sequence_misses_and_repeats_nothing(manager):
    await add(manager, "ORD", 4)
    seen: list[int] = []
    stream = manager.watch("ORD")
    async for event in stream:
        seen.append(event.sequence)
        if event.sequence == 3:
            break
    await stream.aclose()
    assert manager.watchers_count == 0
    await add(manager, "ORD", 2)
    resumed = Follower(manager, "ORD", after_sequence=seen[-1])
    await resumed.wait_count(3)
    await manager.complete_order("ORD")
    await resumed.task
    assert seen + resumed.sequences == [1, 2, 3, 4, 5, 6, 7]


async def test_completion_is_final_and_idempotent(manager):
    await add(manager, "ORD", 1)
    done = await manager.complete_order("ORD")
    assert await manager.complete_order("ORD") is done
    with pytest.raises(InvalidStateError, match="cannot add an event to order 'ORD'"):
        await manager.add_to_order_queue("ORD", "LATE/New")
    with pytest.raises(ValueError, match="complete_order"):
        await manager.add_to_order_queue(
            "OTHER", "x/Completed", kind=OrderEventKind.ORDER_COMPLETED
        )
    assert len(manager.get_order_queue("ORD")) == 2
    assert not manager.has_order_queue("OTHER")
    # A completed order's watch ends after the completion event, even from its end.
    assert [e.sequence async for e in manager.watch("ORD")] == [1, 2]
    assert [e async for e in manager.watch("ORD", after_sequence=2)] == []
    # Completing an order nobody wrote to creates it.
    assert (await manager.complete_order("EMPTY")).sequence == 1


async def test_bad_cursors_are_refused(manager):
    await add(manager, "ORD", 2)
    with pytest.raises(ValueError, match="must not be negative"):
        await anext(manager.watch("ORD", after_sequence=-1))
    with pytest.raises(CursorOutOfRangeError, match="has no event 3: its last is 2"):
        await anext(manager.watch("ORD", after_sequence=3))
    assert manager.watchers_count == 0


async def test_a_cancelled_watcher_does_not_disturb_the_others(manager):
    await add(manager, "ORD", 1)
    leaving, staying = Follower(manager, "ORD"), Follower(manager, "ORD")
    await leaving.wait_count(1)
    await staying.wait_count(1)
    leaving.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving.task
    assert manager.watchers_count == 1
    await add(manager, "ORD", 1)
    await staying.wait_count(2)
    late = Follower(manager, "ORD", after_sequence=2)
    await manager.complete_order("ORD")
    await asyncio.gather(staying.task, late.task)
    assert staying.sequences == [1, 2, 3]
    assert late.sequences == [3]
    assert leaving.sequences == [1]


async def test_the_legacy_read_takes_each_event_once_in_order(manager):
    await manager.add_to_order_queue("ORD", "P1/New")
    await manager.add_to_order_queue("ORD", "P2/New")
    assert await manager.get_from_order_queue("ORD") == "P1/New"
    assert await manager.get_from_order_queue("ORD", timeout=0.01) == "P2/New"
    assert await manager.get_from_order_queue("ORD", timeout=0.01) is None

    waiting = asyncio.create_task(manager.get_from_order_queue("ORD"))
    watcher = Follower(manager, "ORD")
    await watcher.wait_count(2)  # the legacy reader's cursor does not move watchers
    await manager.add_to_order_queue("ORD", "P3/New")
    assert await waiting == "P3/New"
    await manager.complete_order("ORD")
    assert await manager.get_from_order_queue("ORD") == "ORD/Completed"
    # Nothing more can arrive: the answer is immediate, with or without a timeout.
    assert await manager.get_from_order_queue("ORD") is None
    await watcher.task
    assert watcher.sequences == [1, 2, 3, 4]


async def test_removing_an_order_ends_whoever_waits_on_it(manager):
    await add(manager, "ORD", 1)
    assert await manager.get_from_order_queue("ORD") == "P0/New"
    reader = asyncio.create_task(manager.get_from_order_queue("ORD", timeout=None))
    watcher = Follower(manager, "ORD")
    # Tasks first run in creation order: once the watcher has its event, the
    # reader is waiting too.
    await watcher.wait_count(1)
    assert await manager.remove_order_queue("ORD") is True
    with pytest.raises(ExpiredError, match="order 'ORD' was removed"):
        await watcher.task
    assert await reader is None
    assert manager.watchers_count == 0
    assert not manager.has_order_queue("ORD")
    assert await manager.remove_order_queue("ORD") is False


async def test_cleanup_removes_orders_completed_long_enough_ago():
    now = [1000.0]
    manager: OrderQueueManager[str] = OrderQueueManager(retention=60.0, clock=lambda: now[0])
    await manager.complete_order("OLD")
    now[0] = 1030.0
    await manager.complete_order("NEWER")
    await add(manager, "OPEN", 2)
    await manager.complete_order("GONE")
    await manager.remove_order_queue("GONE")
    now[0] = 1089.0
    assert await manager.sweep_expired() == 1
    assert [manager.has_order_queue(o) for o in ("OLD", "NEWER", "OPEN")] == [False, True, True]
    now[0] = 1090.0
    # GONE was removed already: only NEWER counts.
    assert await manager.sweep_expired() == 1
    now[0] = 1e9
    assert await manager.sweep_expired() == 0
    assert manager.get_queue_stats() == {"order_queues_count": 1, "queues": {"OPEN": 2}}


async def test_periodic_cleanup_runs_by_itself(monkeypatch):
    manager: OrderQueueManager[str] = OrderQueueManager(retention=0.0, sweep_interval=0.001)
    removed = asyncio.Event()
    cleanup = manager.sweep_expired

    async def noting_cleanup() -> int:
        count = await cleanup()
        if count:
            removed.set()
        return count

    monkeypatch.setattr(manager, "sweep_expired", noting_cleanup)
    await manager.start()
    await manager.start()
    await manager.complete_order("ORD")
    await removed.wait()
    assert not manager.has_order_queue("ORD")
    await manager.stop()
    await manager.stop()


async def test_stats_count_orders_events_and_watchers(manager):
    await add(manager, "ORD123", 3)
    await add(manager, "ORD456", 1)
    assert manager.get_queue_stats() == {
        "order_queues_count": 2,
        "queues": {"ORD123": 3, "ORD456": 1},
    }
    followers = [Follower(manager, "ORD456") for _ in range(2)]
    for follower in followers:
        await follower.wait_count(1)
    assert manager.watchers_count == 2
    await manager.complete_order("ORD456")
    await asyncio.gather(*(f.task for f in followers))
    assert manager.watchers_count == 0
    assert manager.get_queue_stats()["queues"] == {"ORD123": 3, "ORD456": 2}


async def test_an_idle_watcher_holds_no_copy_of_the_log(manager):
    await add(manager, "ORD", 2000)
    watchers = 500
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        followers = [Follower(manager, "ORD", after_sequence=1999) for _ in range(watchers)]
        for follower in followers:
            await follower.wait_count(1)
        assert manager.watchers_count == watchers
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # A watcher task with its bookkeeping here is about 3 kB; a copy of the
    # log's 2000 event references alone would be 16 kB.
    assert grown / watchers < 8192
    await manager.add_to_order_queue("ORD", "LAST/New")
    await manager.complete_order("ORD")
    await asyncio.gather(*(f.task for f in followers))
    assert {tuple(f.sequences) for f in followers} == {(2000, 2001, 2002)}


async def test_the_seed_usage_works_as_documented():
    await order_queue_manager.add_to_order_queue("ORD123", "PROP456/New")
    message = await order_queue_manager.get_from_order_queue("ORD123", timeout=1.0)
    assert message == "PROP456/New"
    assert order_queue_manager.has_order_queue("ORD123")
    assert len(order_queue_manager.get_order_queue("ORD123")) == 1
    assert order_queue_manager.get_queue_stats()["queues"]["ORD123"] == 1
    assert await order_queue_manager.remove_order_queue("ORD123") is True
    assert not order_queue_manager.has_order_queue("ORD123")


# -- durability ------------------------------------------------------------------


class TaggedCodec:
    """Stores str data as {"tagged": data}, to show data goes through the codec."""

    def encode(self, value: str) -> dict[str, str]:
        return {"tagged": value}

    def decode(self, data: dict[str, str]) -> str:
        return data["tagged"]


def durable_manager(store: Store, now: list[float]) -> OrderQueueManager[str]:
    return OrderQueueManager(
        store=store, data_codec=TaggedCodec(), retention=60.0, clock=lambda: now[0]
    )


async def test_a_restarted_manager_rebuilds_every_log_from_the_store():
    store, now = MemoryStore(), [100.0]
    first = durable_manager(store, now)
    await first.start()
    await first.add_to_order_queue("OPEN", "P1/New", data="quote 1")
    await first.add_to_order_queue(
        "OPEN", "P2/Failed", kind=OrderEventKind.PROPOSAL_FAILED, error="declined"
    )
    await first.add_to_order_queue("OPEN", "P3/New", data="quote 3")
    await add(first, "DONE", 1)
    now[0] = 110.0
    await first.complete_order("DONE")
    await first.stop()
    stored = dict(await store.load("order_events"))
    assert stored[event_key("OPEN", 1)]["data"] == {"tagged": "quote 1"}

    second = durable_manager(store, now)
    await second.start()
    for order in ("OPEN", "DONE"):
        assert second.get_order_queue(order).events_after(0) == first.get_order_queue(
            order
        ).events_after(0)
    assert second.get_order_queue("DONE").completion.sequence == 2
    with pytest.raises(InvalidStateError):
        await second.add_to_order_queue("DONE", "LATE/New")
    # A watcher resumes from its cursor; the sequences go on from the stored ones.
    resumed = Follower(second, "OPEN", after_sequence=2)
    await resumed.wait_count(1)
    assert (await second.add_to_order_queue("OPEN", "P4/New")).sequence == 4
    now[0] = 150.0
    await second.complete_order("OPEN")
    await resumed.task
    assert resumed.sequences == [3, 4, 5]
    # Retention counts from the stored completion time.
    now[0] = 169.0
    assert await second.sweep_expired() == 0
    now[0] = 170.0
    assert await second.sweep_expired() == 1
    await second.stop()

    third = durable_manager(store, now)
    await third.start()
    assert third.get_queue_stats() == {"order_queues_count": 1, "queues": {"OPEN": 5}}
    assert {key for key, _ in await store.load("order_events")} == {
        event_key("OPEN", n) for n in range(1, 6)
    }
    await third.stop()


async def test_a_failed_commit_changes_nothing_and_uses_no_sequence():
    store = ScriptedStore()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store)
    await manager.add_to_order_queue("ORD", "P1/New")
    watcher = Follower(manager, "ORD")
    await watcher.wait_count(1)
    store.refuse = lambda changes: True
    with pytest.raises(StoreError, match="disk full"):
        await manager.add_to_order_queue("ORD", "P2/New")
    with pytest.raises(StoreError):
        await manager.complete_order("ORD")
    with pytest.raises(StoreError):
        await manager.remove_order_queue("ORD")
    assert len(manager.get_order_queue("ORD")) == 1
    assert manager.get_order_queue("ORD").completion is None
    assert manager.has_order_queue("ORD")
    store.refuse = lambda changes: False
    assert (await manager.add_to_order_queue("ORD", "P3/New")).sequence == 2
    await manager.complete_order("ORD")
    await watcher.task
    assert [e.text for e in watcher.events] == ["P1/New", "P3/New", "ORD/Completed"]
    assert [key for key, _ in await store.load("order_events")] == [
        event_key("ORD", n) for n in (1, 2, 3)
    ]


async def test_a_failed_sweep_keeps_the_order_for_the_next(monkeypatch):
    store = ScriptedStore()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store, retention=0.0)
    await manager.complete_order("ORD")
    store.refuse = lambda changes: True
    with pytest.raises(StoreError):
        await manager.sweep_expired()
    assert manager.has_order_queue("ORD")
    store.refuse = lambda changes: False
    assert await manager.sweep_expired() == 1
    assert await store.load("order_events") == []


async def test_concurrent_adds_to_one_order_get_every_sequence_once(tmp_path):
    store = SqliteStore(tmp_path / "orders.sqlite3")
    await store.open()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store)
    watcher = Follower(manager, "ORD")
    events = await asyncio.gather(
        *(manager.add_to_order_queue("ORD", f"P{n}/New") for n in range(100))
    )
    assert sorted(e.sequence for e in events) == list(range(1, 101))
    await manager.complete_order("ORD")
    await watcher.task
    assert watcher.sequences == list(range(1, 102))
    # Memory and store agree event for event: the store's order is memory's.
    restarted: OrderQueueManager[str] = OrderQueueManager(store=store)
    await restarted.start()
    assert restarted.get_order_queue("ORD").events_after(0) == watcher.events
    await restarted.stop()
    await store.close()


async def test_cancelling_the_caller_does_not_cut_a_commit_from_its_append():
    store = ScriptedStore()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store)
    store.gate = asyncio.Event()
    adding = asyncio.create_task(manager.add_to_order_queue("ORD", "P1/New"))
    await store.entered.wait()
    adding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await adding
    store.gate.set()
    await manager.stop()
    assert [e.text for e in manager.get_order_queue("ORD").events_after(0)] == ["P1/New"]
    assert (await manager.add_to_order_queue("ORD", "P2/New")).sequence == 2
    assert len(await store.load("order_events")) == 2


async def test_a_stored_log_with_a_gap_is_refused_at_start():
    store = MemoryStore()
    first: OrderQueueManager[str] = OrderQueueManager(store=store)
    await add(first, "ORD", 3)
    await store.commit([Delete("order_events", event_key("ORD", 2))])
    with pytest.raises(StoreError, match="order 'ORD' is not numbered 1 to 2"):
        await OrderQueueManager(store=store).start()


async def test_removal_listeners_commit_their_deletes_with_the_order():
    store = ScriptedStore()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store)
    removed: list[str] = []

    class Listener:
        def removal_changes(self, order_req_id: str) -> list[Delete]:
            return [Delete("extra", order_req_id)]

        def order_removed(self, order_req_id: str) -> None:
            removed.append(order_req_id)

    manager.add_removal_listener(Listener())
    await store.commit([Put("extra", "ORD", 1)])
    await add(manager, "ORD", 2)
    assert await manager.remove_order_queue("ORD") is True
    assert store.written[-1] == [
        Delete("order_events", event_key("ORD", 1)),
        Delete("order_events", event_key("ORD", 2)),
        Delete("extra", "ORD"),
    ]
    assert removed == ["ORD"]
    assert await store.load("extra") == []


# -- what asking about an order leaves behind ---------------------------------------


async def test_watchers_of_orders_that_do_not_exist_leave_nothing_once_gone(manager):
    manager.max_awaited_orders = 5000
    followers = [Follower(manager, f"GHOST-{n}") for n in range(5000)]
    await poll(
        lambda: manager.stats(0).awaited == 5000, bool, "every ghost is awaited", every=0.001
    )
    assert manager.stats(0).orders == 0
    assert not manager.has_order_queue("GHOST-1")
    for follower in followers:
        follower.task.cancel()
    await asyncio.gather(*(f.task for f in followers), return_exceptions=True)
    assert manager.get_queue_stats() == {"order_queues_count": 0, "queues": {}}
    assert manager.stats(10) == OrderStats(orders=0, events=0, busiest=[], awaited=0)
    assert manager.watchers_count == 0


async def test_a_watcher_waiting_for_an_order_gets_it_and_the_order_stays(manager):
    early, second = Follower(manager, "LATE"), Follower(manager, "LATE")
    await poll(lambda: manager.watchers_count == 2, bool, "both watchers wait", every=0.001)
    assert manager.stats(0).awaited == 1
    await manager.add_to_order_queue("LATE", "P1/New")
    await early.wait_count(1)
    await second.wait_count(1)
    early.task.cancel()
    second.task.cancel()
    await asyncio.gather(early.task, second.task, return_exceptions=True)
    assert manager.has_order_queue("LATE")
    assert manager.stats(5) == OrderStats(orders=1, events=1, busiest=[("LATE", 1)], awaited=0)


async def test_a_cursor_into_an_order_that_does_not_exist_is_out_of_range_and_leaves_nothing(
    manager,
):
    with pytest.raises(CursorOutOfRangeError):
        await anext(manager.watch("NOWHERE", after_sequence=3))
    assert manager.get_queue_stats()["order_queues_count"] == 0


async def test_how_many_orders_are_awaited_at_once_is_bounded():
    manager: OrderQueueManager[str] = OrderQueueManager(max_awaited_orders=2)
    a, b = Follower(manager, "A"), Follower(manager, "B")
    await poll(lambda: manager.stats(0).awaited == 2, bool, "A and B are awaited", every=0.001)
    with pytest.raises(WatchLimitError, match="2 orders that do not exist yet") as refused:
        await anext(manager.watch("C"))
    assert refused.value.retry_after > 0
    # Another watcher of an awaited order, or of one that exists, is no new one.
    also_a = Follower(manager, "A")
    await manager.add_to_order_queue("EXISTS", "P1/New")
    existing = Follower(manager, "EXISTS")
    await existing.wait_count(1)
    await poll(lambda: manager.watchers_count == 4, bool, "every watcher waits", every=0.001)
    a.task.cancel()
    also_a.task.cancel()
    await asyncio.gather(a.task, also_a.task, return_exceptions=True)
    c = Follower(manager, "C")
    await poll(lambda: manager.stats(0).awaited == 2, bool, "C is awaited now", every=0.001)
    for follower in (b, c, existing):
        follower.task.cancel()
    await asyncio.gather(b.task, c.task, existing.task, return_exceptions=True)


async def test_a_change_that_could_not_be_committed_leaves_no_order_behind():
    store = ScriptedStore()
    manager: OrderQueueManager[str] = OrderQueueManager(store=store)
    store.refuse = lambda changes: True
    with pytest.raises(StoreError):
        await manager.add_to_order_queue("NEW", "P1/New")
    with pytest.raises(StoreError):
        await manager.complete_order("NEW")
    assert manager.get_queue_stats()["order_queues_count"] == 0
    # Watched meanwhile, the order is awaited again and its watcher gets what follows.
    watcher = Follower(manager, "NEW")
    await poll(lambda: manager.stats(0).awaited == 1, bool, "the watcher waits", every=0.001)
    with pytest.raises(StoreError):
        await manager.add_to_order_queue("NEW", "P1/New")
    assert manager.stats(0).awaited == 1
    store.refuse = lambda changes: False
    await manager.add_to_order_queue("NEW", "P2/New")
    await manager.complete_order("NEW")
    await watcher.task
    assert [e.text for e in watcher.events] == ["P2/New", "NEW/Completed"]


# -- tombstones ----------------------------------------------------------------------


def tombstoning_manager(store: Store, now: list[float]) -> OrderQueueManager[str]:
    return OrderQueueManager(
        store=store, retention=10.0, tombstone_retention=100.0, clock=lambda: now[0]
    )


async def test_a_removed_order_is_refused_while_its_tombstone_is_kept_across_restarts():
    store, now = MemoryStore(), [1000.0]
    manager = tombstoning_manager(store, now)
    await manager.start()
    await add(manager, "OLD", 2)
    await manager.complete_order("OLD")
    now[0] = 1010.0
    assert await manager.sweep_expired() == 1
    for refused in (
        lambda: anext(manager.watch("OLD")),
        lambda: anext(manager.watch("OLD", after_sequence=3)),
        lambda: manager.add_to_order_queue("OLD", "P9/New"),
        lambda: manager.complete_order("OLD"),
    ):
        with pytest.raises(ExpiredError, match="order 'OLD' was removed"):
            await refused()
    assert manager.get_queue_stats()["order_queues_count"] == 0
    assert await store.load("order_events") == []
    await manager.stop()

    restarted = tombstoning_manager(store, now)
    await restarted.start()
    with pytest.raises(ExpiredError):
        await anext(restarted.watch("OLD"))
    # The tombstone goes once tombstone_retention has passed since the removal.
    now[0] = 1109.0
    await restarted.sweep_expired()
    with pytest.raises(ExpiredError):
        await restarted.complete_order("OLD")
    now[0] = 1110.0
    await restarted.sweep_expired()
    assert await store.load("order_tombstones") == []
    assert (await restarted.complete_order("OLD")).sequence == 1
    await restarted.stop()


async def test_a_watcher_following_an_order_when_it_is_removed_learns_it_expired():
    now = [0.0]
    manager = tombstoning_manager(MemoryStore(), now)
    await add(manager, "ORD", 1)
    watcher = Follower(manager, "ORD")
    await watcher.wait_count(1)
    await manager.remove_order_queue("ORD")
    with pytest.raises(ExpiredError):
        await watcher.task
    # Coming back from the start finds the tombstone, not a new empty order.
    with pytest.raises(ExpiredError):
        await anext(manager.watch("ORD"))


async def test_without_tombstone_retention_a_removed_id_is_free_at_once(manager):
    await manager.complete_order("ORD")
    await manager.remove_order_queue("ORD")
    assert await manager.store.load("order_tombstones") == []
    assert (await manager.complete_order("ORD")).sequence == 1


async def test_stats_are_bounded_to_the_busiest_orders(manager):
    await add(manager, "B", 3)
    await add(manager, "A", 3)
    await add(manager, "C", 1)
    await add(manager, "D", 5)
    stats = manager.stats(3)
    assert stats == OrderStats(
        orders=4, events=12, busiest=[("D", 5), ("A", 3), ("B", 3)], awaited=0
    )
    await manager.complete_order("D")
    await manager.remove_order_queue("D")
    assert manager.stats(1) == OrderStats(orders=3, events=7, busiest=[("A", 3)], awaited=0)
