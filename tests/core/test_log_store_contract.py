"""The LogStore contract, which every backend passes alike (the log_store
fixture, tests/core/conftest.py, runs each test on each backend)."""

import asyncio

import pytest

from queues.core.log_store import (
    LogClosedError,
    LogFullError,
    LogHead,
    LogRemovedError,
    LogStore,
)

S = "events"


async def test_entries_read_back_in_seq_order_from_a_cursor(log_store: LogStore) -> None:
    for index in range(5):
        appended = await log_store.append(
            S, "o1", f"k{index}", {"n": index, "é": [1.5, None]}, now=10.0 + index
        )
        assert appended.created and appended.entry.seq == index + 1
    read = await log_store.read(S, "o1", after=2, limit=2)
    assert [(e.seq, e.key, e.body, e.created_at) for e in read] == [
        (3, "k2", {"n": 2, "é": [1.5, None]}, 12.0),
        (4, "k3", {"n": 3, "é": [1.5, None]}, 13.0),
    ]
    assert [e.seq for e in await log_store.read(S, "o1", after=0, limit=100)] == [1, 2, 3, 4, 5]
    assert await log_store.read(S, "o1", after=5, limit=10) == []
    assert await log_store.read(S, "nobody", after=0, limit=10) == []
    assert await log_store.head(S, "o1") == LogHead(5, 10.0, None, None)
    assert await log_store.head(S, "nobody") is None
    # Another space, or another name, is another log.
    other = await log_store.append("other", "o1", "k0", None, now=1.0)
    assert other.entry.seq == 1


async def test_a_key_already_in_the_log_answers_its_entry_and_writes_nothing(
    log_store: LogStore,
) -> None:
    first = await log_store.append(S, "o1", "p1", {"v": 1}, now=1.0)
    again = await log_store.append(S, "o1", "p1", {"v": 2}, now=2.0)
    assert (again.created, again.entry) == (False, first.entry)
    assert await log_store.find(S, "o1", "p1") == first.entry
    assert await log_store.find(S, "o1", "p2") is None
    # An empty key makes no append idempotent.
    a = await log_store.append(S, "o1", "", 1, now=3.0)
    b = await log_store.append(S, "o1", "", 1, now=3.0)
    assert (a.created, b.created, a.entry.seq, b.entry.seq) == (True, True, 2, 3)
    assert await log_store.find(S, "o1", "") is None
    # Even a closed log answers a key it holds.
    await log_store.close_log(S, "o1", now=4.0)
    assert (await log_store.append(S, "o1", "p1", None, now=5.0)).entry == first.entry


async def test_concurrent_appends_to_one_log_make_gapless_seqs_and_one_entry_per_key(
    log_store: LogStore,
) -> None:
    appended = await asyncio.gather(
        *(log_store.append(S, "o1", f"k{i % 20}", i, now=1.0) for i in range(60))
    )
    assert sum(a.created for a in appended) == 20
    entries = await log_store.read(S, "o1", after=0, limit=100)
    assert [e.seq for e in entries] == list(range(1, 21))
    assert sorted(e.key for e in entries) == sorted(f"k{i}" for i in range(20))
    by_key = {e.key: e for e in entries}
    assert all(a.entry == by_key[a.entry.key] for a in appended)


async def test_a_closed_log_refuses_appends_and_close_creates_an_empty_log(
    log_store: LogStore,
) -> None:
    await log_store.append(S, "o1", "a", None, now=1.0)
    closing = await log_store.append(S, "o1", "done", None, now=2.0, close=True)
    assert closing.entry.seq == 2
    assert await log_store.head(S, "o1") == LogHead(2, 1.0, 2.0, None)
    with pytest.raises(LogClosedError, match="events log 'o1' is closed"):
        await log_store.append(S, "o1", "b", None, now=3.0)
    # Closing again changes nothing.
    assert await log_store.close_log(S, "o1", now=9.0) == LogHead(2, 1.0, 2.0, None)
    assert await log_store.close_log(S, "o2", now=5.0) == LogHead(0, 5.0, 5.0, None)
    with pytest.raises(LogClosedError):
        await log_store.append(S, "o2", "a", None, now=6.0)


async def test_an_append_beyond_the_limit_is_refused_and_adds_nothing(log_store: LogStore) -> None:
    for key in "ab":
        await log_store.append(S, "o1", key, None, now=1.0, limit=2)
    with pytest.raises(LogFullError, match="holds 2 entries, its limit") as refused:
        await log_store.append(S, "o1", "c", None, now=2.0, limit=2)
    assert refused.value.limit == 2
    assert (await log_store.head(S, "o1")).last_seq == 2
    # A repeat of a key it holds is still answered.
    assert not (await log_store.append(S, "o1", "a", None, now=2.0, limit=2)).created
    with pytest.raises(LogFullError):
        await log_store.append(S, "o9", "a", None, now=2.0, limit=0)
    assert await log_store.head(S, "o9") is None


async def test_a_watcher_hears_appends_closes_and_removals_of_its_log_only(
    log_store: LogStore,
) -> None:
    with log_store.watch(S, "o1") as changes:
        await log_store.append(S, "o2", "x", None, now=1.0)
        await log_store.append(S, "o1", "a", None, now=1.0)
        heard = await changes.next_within(10.0)
        assert heard is not None and (heard.space, heard.name, heard.seq) == (S, "o1", 1)
        await log_store.close_log(S, "o1", now=2.0)
        assert await changes.next_within(10.0) is not None
        await log_store.remove(S, ["o1"], now=3.0, tombstone=True)
        assert await changes.next_within(10.0) is not None
        assert await changes.next_within(0.2) is None


async def test_removal_deletes_entries_and_a_tombstone_keeps_the_name_taken(
    log_store: LogStore,
) -> None:
    for name in ("o1", "o2", "o3"):
        await log_store.append(S, name, "a", None, now=1.0)
        await log_store.append(S, name, "b", None, now=1.0, close=True)
    assert await log_store.remove(S, ["o1", "o2", "o1", "nobody"], now=5.0, tombstone=True) == 2
    assert await log_store.head(S, "o1") == LogHead(2, 1.0, 1.0, 5.0)
    assert await log_store.read(S, "o1", after=0, limit=10) == []
    assert await log_store.find(S, "o1", "a") is None
    with pytest.raises(LogRemovedError, match="events log 'o1' was removed"):
        await log_store.append(S, "o1", "c", None, now=6.0)
    with pytest.raises(LogRemovedError):
        await log_store.close_log(S, "o1", now=6.0)
    # A tombstone is removed once only.
    assert await log_store.remove(S, ["o1"], now=7.0, tombstone=True) == 0
    assert await log_store.remove(S, ["o3"], now=7.0, tombstone=False) == 1
    assert await log_store.head(S, "o3") is None
    # Its name is free again once its tombstone is forgotten.
    assert await log_store.forget_removed(S, 5.5, limit=1) == 1
    assert await log_store.forget_removed(S, 5.5, limit=10) == 1
    assert await log_store.forget_removed(S, 5.5, limit=10) == 0
    assert await log_store.head(S, "o1") is None
    assert (await log_store.append(S, "o1", "a", None, now=8.0)).entry.seq == 1


async def test_closed_before_answers_the_oldest_closed_logs_not_removed(
    log_store: LogStore,
) -> None:
    await log_store.close_log(S, "late", now=30.0)
    await log_store.close_log(S, "early", now=10.0)
    await log_store.close_log(S, "mid", now=20.0)
    await log_store.close_log(S, "gone", now=5.0)
    await log_store.remove(S, ["gone"], now=6.0, tombstone=True)
    await log_store.append(S, "open", "a", None, now=1.0)
    await log_store.close_log("other", "early", now=1.0)
    assert await log_store.closed_before(S, 25.0, limit=10) == ["early", "mid"]
    assert await log_store.closed_before(S, 31.0, limit=2) == ["early", "mid"]
    assert await log_store.closed_before(S, 10.0, limit=10) == []


async def test_totals_count_logs_and_entries_exactly(log_store: LogStore) -> None:
    for name, count in (("a", 3), ("b", 5), ("c", 3), ("d", 1)):
        for index in range(count):
            await log_store.append(S, name, str(index), None, now=1.0)
    await log_store.close_log(S, "empty", now=1.0)
    await log_store.append("other", "x", "", None, now=1.0)
    totals = await log_store.totals(S, busiest=3)
    assert (totals.logs, totals.entries, totals.busiest) == (5, 12, [("b", 5), ("a", 3), ("c", 3)])
    await log_store.remove(S, ["b"], now=2.0, tombstone=True)
    await log_store.remove(S, ["d", "empty"], now=2.0, tombstone=False)
    totals = await log_store.totals(S, busiest=0)
    assert (totals.logs, totals.entries, totals.busiest) == (2, 6, [])
    assert (await log_store.totals("unused", busiest=5)).logs == 0
