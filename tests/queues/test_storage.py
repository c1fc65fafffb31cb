"""The Store contract, held by the memory and the SQLite store alike."""

import asyncio
import sqlite3
from pathlib import Path

import pytest
from support.store_doubles import cap_pages

from queues.records import RecordError
from queues.storage import Delete, MemoryStore, Put, Store, StoreError
from queues.storage_sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path: Path):
    store: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    await store.open()
    yield store
    await store.close()


async def test_records_come_back_in_key_order_and_deletes_remove_them(store):
    await store.commit([Put("m", "b", {"n": 2}), Put("m", "a", [1, "x"]), Put("other", "a", 0)])
    await store.commit([Put("m", "c", None), Delete("m", "b"), Delete("m", "missing")])
    assert await store.load("m") == [("a", [1, "x"]), ("c", None)]
    assert await store.load("other") == [("a", 0)]
    assert await store.load("empty") == []


async def test_a_value_json_cannot_hold_is_refused_before_anything_is_written(store):
    with pytest.raises(TypeError):
        await store.commit([Put("m", "ok", 1), Put("m", "bad", object())])
    assert await store.load("m") == []


async def test_sqlite_records_survive_reopening(tmp_path):
    first = SqliteStore(tmp_path / "s.db")
    await first.open()
    await first.commit([Put("m", "k", {"v": 1})])
    await first.close()
    second = SqliteStore(tmp_path / "s.db")
    await second.open()
    assert await second.load("m") == [("k", {"v": 1})]
    await second.close()


async def test_concurrent_commits_share_transactions(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    transactions = []
    original = store._write
    monkeypatch.setattr(
        store, "_write", lambda batch: (transactions.append(len(batch)), original(batch))
    )
    await asyncio.gather(*(store.commit([Put("m", f"{n:03}", n)]) for n in range(200)))
    assert [v for _, v in await store.load("m")] == list(range(200))
    assert sum(transactions) == 200
    assert len(transactions) < 200
    await store.close()


async def test_a_failed_transaction_writes_nothing_of_it(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    with sqlite3.connect(path) as side:
        side.execute(
            "CREATE TRIGGER full BEFORE INSERT ON records WHEN NEW.key = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(StoreError, match=f"cannot write store {path}: disk full"):
        await store.commit([Put("m", "a", 1), Put("m", "poison", 2)])
    assert await store.load("m") == []
    await store.commit([Put("m", "b", 3)])
    assert await store.load("m") == [("b", 3)]
    await store.close()


async def test_a_corrupt_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteStore(path)
    with pytest.raises(StoreError, match=f"cannot open store {path}"):
        await store.open()
    await store.close()
    assert path.read_bytes().startswith(b"this is not a database")


async def test_a_path_that_cannot_hold_a_database_is_refused_naming_it(tmp_path):
    (tmp_path / "a-file").write_text("")
    for path in (tmp_path / "a-file" / "s.db", tmp_path):
        store = SqliteStore(path)
        with pytest.raises(StoreError, match=f"cannot open store {path}"):
            await store.open()
        await store.close()


async def test_a_store_written_by_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as side:
        side.execute("CREATE TABLE schema_version (version INTEGER)")
        side.execute("INSERT INTO schema_version VALUES (99)")
    store = SqliteStore(path)
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        await store.open()
    await store.close()


async def test_cancelling_a_commits_future_withdraws_nothing(store):
    answer = store.commit([Put("m", "a", 1)])
    answer.cancel()
    await store.commit([Put("m", "b", 2)])
    assert await store.load("m") == [("a", 1), ("b", 2)]


async def test_a_full_disk_is_reported_as_full_and_the_store_writes_once_space_is_freed(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    await store.commit([Put("m", "small", 1)])
    await cap_pages(store)
    with pytest.raises(StoreError, match=f"^cannot write store {path}: database or disk is full$"):
        await store.commit([Put("m", f"big-{n}", "x" * 5000) for n in range(20)])
    # The failed transaction was checkpointed, and its WAL truncated.
    assert (tmp_path / "s.db-wal").stat().st_size == 0
    await cap_pages(store, 1_000_000)
    await store.commit([Put("m", "big", "x" * 5000)])
    assert [key for key, _ in await store.load("m")] == ["big", "small"]
    await store.close()


def damage_a_page(path: Path) -> None:
    with path.open("r+b") as file:
        file.seek(2 * 4096)
        file.write(b"\xa5" * 4096)


def a_foreign_database(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as side:
        side.execute("CREATE TABLE accounts (id INTEGER)")
        side.execute("INSERT INTO accounts VALUES (1)")
    side.close()


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20_000])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (damage_a_page, "the file is damaged"),
        (cut_short, "the file is damaged: database disk image is malformed"),
        (a_foreign_database, r"it holds tables \(accounts\) but no schema version"),
    ],
)
async def test_a_file_that_is_not_a_usable_store_is_refused_unmodified(tmp_path, damage, reason):
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.open()
    await first.commit([Put("m", f"{n:04}", "x" * 500) for n in range(100)])
    await first.close()
    damage(path)
    before = path.read_bytes()
    store = SqliteStore(path)
    with pytest.raises(StoreError, match=f"^cannot open store {path}: {reason}"):
        await store.open()
    await store.close()
    assert path.read_bytes() == before
    assert [file.name for file in tmp_path.iterdir()] == ["s.db"], "no -wal or -shm is left"


async def test_an_empty_file_beside_a_wal_is_refused_and_the_wal_kept(tmp_path):
    running = SqliteStore(tmp_path / "s.db")
    await running.open()
    await running.commit([Put("m", "k", "only in the WAL")])
    wal = (tmp_path / "s.db-wal").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    (other / "s.db").write_bytes(b"")
    (other / "s.db-wal").write_bytes(wal)
    await running.close()

    store = SqliteStore(other / "s.db")
    with pytest.raises(
        StoreError, match=r"the file is empty, but an earlier run left s\.db-wal beside it"
    ):
        await store.open()
    await store.close()
    assert (other / "s.db-wal").read_bytes() == wal


async def test_an_empty_file_alone_opens_as_a_new_store(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"")
    store = SqliteStore(path)
    await store.open()
    await store.commit([Put("m", "k", 1)])
    assert await store.load("m") == [("k", 1)]
    await store.close()


async def test_a_row_that_is_not_json_is_refused_naming_store_collection_and_key(tmp_path):
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    await store.commit([Put("m", "good", 1)])
    with sqlite3.connect(path) as side:
        side.execute("INSERT INTO records VALUES ('m', 'bad', '{\"cut')")
    side.close()
    with pytest.raises(
        RecordError, match=f"^cannot read store {path}: record 'bad' of collection 'm' is not JSON"
    ):
        await store.load("m")
    await store.close()


async def test_opening_a_current_store_writes_nothing(tmp_path):
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.open()
    await first.commit([Put("m", "k", 1)])
    await first.close()
    before = path.read_bytes()
    again = SqliteStore(path)
    await again.open()
    # Nothing in the WAL: the schema, already current, was not written again.
    assert (tmp_path / "s.db-wal").stat().st_size == 0
    await again.close()
    assert path.read_bytes() == before


async def test_an_empty_file_beside_only_a_shm_is_refused(tmp_path):
    # Only a database in WAL mode has a -shm, and such a database has a header:
    # this file lost its content.
    path = tmp_path / "s.db"
    path.write_bytes(b"")
    (tmp_path / "s.db-shm").write_bytes(b"\0" * 32768)
    store = SqliteStore(path)
    with pytest.raises(StoreError, match=r"an earlier run left s\.db-shm beside it"):
        await store.open()
    await store.close()
    assert path.read_bytes() == b""
