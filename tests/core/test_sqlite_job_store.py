"""What SqliteJobStore adds to the contract: its file outlives the process."""

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from queues.core.jobs import Job, JobState, NewJob
from queues.core.sqlite_store import MIGRATIONS, SqliteJobStore
from queues.errors import RequestConflictError
from queues.records import RecordError
from queues.storage import StoreError
from queues.storage_sqlite import SqliteStore


async def test_jobs_and_claims_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    await first.open()
    [kept, claimed] = await first.submit(
        [NewJob("q", "a", 1, 3, "r1", "fp"), NewJob("q", "b", 3, 3)], now=1.0
    )
    [claim] = await first.claim("q", "w1", limit=1, lease=30.0, now=2.0)
    await first.close()

    again = SqliteJobStore(path)
    await again.open()
    assert (await again.get(kept.job.id)).state is JobState.AVAILABLE
    # The claim is the store's: its token still fences the job after the reopen.
    done = await again.complete(claim, "r", hold=False, now=3.0)
    assert (done.id, done.state) == (claimed.job.id, JobState.COMPLETED)
    [repeat] = await again.submit([NewJob("q", "a", 1, 3, "r1", "fp")], now=4.0)
    assert not repeat.created and repeat.job.id == kept.job.id
    await again.close()


async def test_a_newer_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = SqliteJobStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as side:
        side.execute("UPDATE schema_version SET version = 99")
    side.close()
    newer = SqliteJobStore(path)
    with pytest.raises(StoreError, match=f"cannot open store {path}: schema version 99 is newer"):
        await newer.open()
    await newer.close()


def back_to_version_4(side: sqlite3.Connection) -> None:
    """Undo schema version 5 (fairness keys, aging, rate limits) in a file."""
    for trigger in ("fair_keys_out", "fair_keys_moved"):
        side.execute(f"DROP TRIGGER {trigger}")
    for index in ("jobs_fair", "jobs_aging", "jobs_due", "jobs_running_keys"):
        side.execute(f"DROP INDEX {index}")
    for table in ("fair_keys", "fair_clocks", "rate_limits"):
        side.execute(f"DROP TABLE {table}")
    for column in ("fairness_key", "rank", "ready_at"):
        side.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    side.execute(
        "CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = 'available'"
    )
    side.execute("UPDATE schema_version SET version = 4")


async def test_a_file_from_before_fairness_keeps_its_order_and_ranks_new_jobs_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    await first.open()
    await first.submit([NewJob("q", f"old{n}", 2, 3) for n in range(4)], now=1.0)
    [claim] = await first.claim("q", "w1", limit=1, lease=30.0, now=2.0)
    await first.close()
    with sqlite3.connect(path) as side:
        back_to_version_4(side)
    side.close()

    again = SqliteJobStore(path)
    await again.open()
    await again.submit(
        [NewJob("q", "new", 2, 3), NewJob("q", "other", 2, 3, fairness_key="B")], now=5.0
    )
    assert (await again.stats("q")).busiest_keys == (("", 4), ("B", 1))
    names = []
    while claims := await again.claim("q", "w1", limit=1, lease=30.0, now=6.0):
        names.append(claims[0].job.payload)
    # B, new, starts at the clock (old1's rank) and takes its turn there; the
    # old jobs keep their order, and the new job of theirs comes after them.
    assert names == ["old1", "other", "old2", "old3", "new"]
    old = await again.get(claim.id)
    assert (old.rank, old.ready_at) == (float(old.seq), 1.0)
    await again.close()


async def test_a_file_from_before_the_kept_counts_is_counted_as_it_opens(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    await first.open()
    await first.submit([NewJob("q", n, n % 2, 3) for n in range(5)], now=1.0)
    [claim] = await first.claim("q", "w1", limit=1, lease=30.0, now=2.0)
    await first.complete(claim, "r", hold=False, now=3.0)
    await first.close()
    # Back to schema version 2, whose files hold jobs but no job_counts.
    with sqlite3.connect(path) as side:
        back_to_version_4(side)
        for name in ("jobs_counted_in", "jobs_counted_out", "jobs_counted_moved"):
            side.execute(f"DROP TRIGGER {name}")
        side.execute("DROP INDEX jobs_waiting_since")
        side.execute("DROP INDEX jobs_running_since")
        side.execute("DROP TABLE job_counts")
        side.execute("ALTER TABLE jobs DROP COLUMN trace")
        side.execute("UPDATE schema_version SET version = 2")
    side.close()

    again = SqliteJobStore(path)
    await again.open()
    counts = await again.stats("q")
    assert counts.by_state_priority == {
        (JobState.AVAILABLE, 0): 3,
        (JobState.AVAILABLE, 1): 1,
        (JobState.COMPLETED, 1): 1,
    }
    assert counts.oldest_available == 1.0
    # The counts go on moving with the jobs.
    [claim] = await again.claim("q", "w1", limit=1, lease=30.0, now=4.0)
    counts = await again.stats("q")
    assert counts.by_state_priority == {
        (JobState.AVAILABLE, 0): 3,
        (JobState.RUNNING, 1): 1,
        (JobState.COMPLETED, 1): 1,
    }
    assert counts.earliest_started == 4.0
    await again.close()
    assert len(MIGRATIONS) == 5


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


async def a_store_of_jobs(path: Path) -> None:
    store = SqliteJobStore(path)
    await store.open()
    await store.submit([NewJob("q", "x" * 500, 1, 3) for _ in range(100)], now=1.0)
    await store.close()


async def assert_refused(path: Path, reason: str) -> None:
    """SqliteJobStore refuses to open path for reason, leaving the file as it was."""
    found = await asyncio.to_thread(path.read_bytes)
    store = SqliteJobStore(path)
    with pytest.raises(StoreError, match=f"^cannot open store {path}: {reason}"):
        await store.open()
    await store.close()
    assert await asyncio.to_thread(path.read_bytes) == found


def names_in(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def execute(path: Path, statement: str) -> None:
    """statement, committed, by another connection to the file."""
    side = sqlite3.connect(path)
    with side:
        side.execute(statement)
    side.close()


def overwrite_a_page(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[3 * 4096 : 4 * 4096] = b"\x5a" * 4096
    path.write_bytes(content)


def replace_with_another_programs_database(path: Path) -> None:
    path.unlink()
    execute(path, "CREATE TABLE invoices (id INTEGER)")


def make_its_schema_newer(path: Path) -> None:
    execute(path, "UPDATE schema_version SET version = 7")


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (overwrite_a_page, "the file is damaged"),
        (replace_with_another_programs_database, r"it holds tables \(invoices\) but no schema"),
        (make_its_schema_newer, f"schema version 7 is newer than this program's {len(MIGRATIONS)}"),
    ],
)
async def test_a_file_the_store_cannot_use_is_refused_as_it_was_found(
    tmp_path: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "jobs.sqlite3"
    await a_store_of_jobs(path)
    spoil(path)
    await assert_refused(path, reason)
    assert names_in(tmp_path) == ["jobs.sqlite3"], "no -wal or -shm is left"


async def test_a_records_store_is_not_taken_for_a_job_store(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    records = SqliteStore(path)
    await records.open()
    await records.close()
    await assert_refused(
        path, r"it holds tables \(records, schema_version\) but not jobs, sqlite_sequence:"
    )


async def test_an_empty_file_beside_the_wal_of_a_job_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    running = SqliteJobStore(path)
    await running.open()
    await running.submit([NewJob("q", "only in the WAL", 1, 3)], now=1.0)
    wal = path.with_name("jobs.sqlite3-wal")
    kept = wal.read_bytes()
    await running.close()  # the last connection's close checkpoints the WAL
    path.write_bytes(b"")
    wal.write_bytes(kept)
    await assert_refused(path, r"the file is empty, but an earlier run left jobs\.sqlite3-wal")
    assert wal.read_bytes() == kept


async def limit_pages(store: SqliteJobStore, pages: int | None = None) -> None:
    """Let the store's file grow to pages pages (None: no more than it has),
    as a full disk would."""
    connection = store._file.connection
    assert connection is not None
    # The answer is read at once: a cursor left unread would keep a read
    # transaction open, and no checkpoint could truncate the WAL.
    await store._file.run(
        lambda: connection.execute(f"PRAGMA max_page_count={pages or 1}").fetchall()
    )


async def test_a_full_disk_is_reported_as_full_and_writes_go_on_once_space_is_freed(
    store: SqliteJobStore,
) -> None:
    path = store.path
    [small] = await store.submit([NewJob("q", "small", 1, 3)], now=1.0)
    await limit_pages(store)
    with pytest.raises(StoreError, match=f"^cannot write store {path}: database or disk is full$"):
        await store.submit([NewJob("q", "x" * 5000, 1, 3) for _ in range(20)], now=2.0)
    # The failed transaction was checkpointed, and its WAL truncated.
    assert path.with_name("jobs.sqlite3-wal").stat().st_size == 0
    await limit_pages(store, 1_000_000)
    [big] = await store.submit([NewJob("q", "x" * 5000, 1, 3)], now=3.0)
    page = await store.list("q", states=None, after=0, limit=10)
    assert [job.id for job in page.jobs] == [small.job.id, big.job.id]


async def traced(store: SqliteJobStore) -> list[str]:
    """The statements the store runs from now on, as it runs them."""
    statements: list[str] = []
    connection = store._file.connection
    assert connection is not None
    await store._file.run(connection.set_trace_callback, statements.append)
    return statements


async def test_concurrent_submits_share_commits_and_a_conflict_fails_only_its_own(
    store: SqliteJobStore,
) -> None:
    await store.submit([NewJob("q", "first", 1, 3, "r1", "fp")], now=1.0)
    statements = await traced(store)
    answers = await asyncio.gather(
        *(store.submit([NewJob("q", n, 1, 3)], now=2.0) for n in range(25)),
        store.submit([NewJob("q", "again", 1, 3, "r1", "another")], now=2.0),
        *(store.submit([NewJob("q", n, 1, 3)], now=2.0) for n in range(25, 49)),
        return_exceptions=True,
    )
    assert isinstance(answers.pop(25), RequestConflictError)
    assert [answer[0].job.payload for answer in answers] == list(range(49))
    transactions = statements.count("BEGIN IMMEDIATE")
    assert 1 <= transactions < 50
    assert statements.count("COMMIT") == transactions
    assert (await store.stats("q")).count(JobState.AVAILABLE) == 50


async def test_an_operation_that_fails_in_a_batch_undoes_only_what_it_wrote(
    store: SqliteJobStore,
) -> None:
    statements = await traced(store)
    answers = await asyncio.gather(
        store.submit([NewJob("q", "before", 1, 3)], now=1.0),
        # Its first job is written before its second fails: JSON cannot hold an object().
        store.submit([NewJob("q", "undone", 1, 3), NewJob("q", object(), 1, 3)], now=1.0),
        store.submit([NewJob("q", "after", 1, 3)], now=1.0),
        return_exceptions=True,
    )
    assert isinstance(answers[1], TypeError)
    assert statements.count("COMMIT") == 1, "the three ran in one transaction"
    page = await store.list("q", states=None, after=0, limit=10)
    assert [job.payload for job in page.jobs] == ["before", "after"]


async def test_a_batch_that_cannot_be_committed_fails_all_of_it_and_announces_nothing(
    store: SqliteJobStore,
) -> None:
    path = store.path
    await limit_pages(store)
    with store.subscribe("q") as changes:
        answers = await asyncio.gather(
            *(store.submit([NewJob("q", "x" * 5000, 1, 3)], now=1.0) for _ in range(10)),
            return_exceptions=True,
        )
        assert {str(answer) for answer in answers} == {
            f"cannot write store {path}: database or disk is full"
        }
        assert all(isinstance(answer, StoreError) for answer in answers)
        assert await changes.next_within(0) is None


@pytest.mark.parametrize(
    ("column", "stored", "reason"),
    [
        ("payload", '{"cut', "field 'payload' is not JSON: unexpected end of data"),
        ("result", "[1,", "field 'result' is not JSON"),
        ("review", "not json", "field 'review' is not JSON"),
        ("state", "lost", "field 'state' must be one of 'available', .*, not a string 'lost'"),
    ],
)
async def test_a_job_row_that_cannot_be_read_is_named_in_one_line(
    store: SqliteJobStore, column: str, stored: str, reason: str
) -> None:
    [broken, fine] = await store.submit([NewJob("q", "a", 2, 3), NewJob("q", "b", 1, 3)], now=1.0)
    execute(store.path, f"UPDATE jobs SET {column} = '{stored}' WHERE id = '{broken.job.id}'")
    expected = (
        f"^cannot read store {store.path}: record '{broken.job.id}' of collection 'jobs'"
        f" is broken: {reason}"
    )
    with pytest.raises(RecordError, match=expected) as raised:
        await store.get(broken.job.id)
    assert "\n" not in str(raised.value)
    assert (await store.get(fine.job.id)).payload == "b"


async def test_a_write_that_meets_a_broken_row_fails_alone_naming_it(store: SqliteJobStore) -> None:
    [broken] = await store.submit([NewJob("q", "a", 1, 3)], now=1.0)
    execute(store.path, f"UPDATE jobs SET payload = '{{' WHERE id = '{broken.job.id}'")
    claiming, other = await asyncio.gather(
        store.claim("q", "w", limit=1, lease=30.0, now=2.0),
        store.submit([NewJob("other", "b", 1, 3)], now=2.0),
        return_exceptions=True,
    )
    assert isinstance(claiming, RecordError) and claiming.key == broken.job.id
    assert isinstance(other, list) and other[0].created
    # The claim was undone: the row is as it was, claimed by no one.
    side = sqlite3.connect(store.path)
    undone = side.execute("SELECT state, attempt FROM jobs WHERE queue = 'q'").fetchall()
    side.close()
    assert undone == [("available", 0)]


def restored_job(job_id: str, seq: int, state: JobState, **changes: object) -> Job:
    job = Job(
        id=job_id,
        queue="q",
        seq=seq,
        payload={"p": [1, "two"]},
        priority=3,
        state=state,
        max_attempts=4,
        attempt=2,
        failures=1,
        created_at=10.0,
        run_at=50.0,
        lease_owner="",
        lease_until=None,
        result={"r": {"premium": 5}, "why": ""},
        error="boom",
        finished_at=40.0,
        request_id=f"req-{job_id}",
        fingerprint=f"fp-{job_id}",
        attempt_timeout=12.5,
        started_at=30.0,
        review=["approve", "alice", "", 45.0],
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


async def test_restored_jobs_are_kept_exactly_as_given(store: SqliteJobStore) -> None:
    jobs = [
        restored_job("held", 7, JobState.HELD, finished_at=None),
        restored_job("later", 42, JobState.AVAILABLE, result=None, review=None),
        restored_job("done", 3, JobState.COMPLETED, run_at=None),
    ]
    await store.restore(jobs)
    for job in jobs:
        assert await store.get(job.id) == job
    page = await store.list("q", states=None, after=0, limit=10)
    assert [job.seq for job in page.jobs] == [3, 7, 42]
    # New jobs come after them, and their request ids still deduplicate.
    [new, repeat] = await store.submit(
        [NewJob("q", "n", 1, 3), NewJob("q", "x", 1, 3, "req-done", "fp-done")], now=60.0
    )
    assert new.job.seq > 42
    assert (repeat.created, repeat.job.id) == (False, "done")
    [claim] = await store.claim("q", "w", limit=1, lease=30.0, now=60.0)
    assert (claim.id, claim.token) == ("later", 3)


async def test_a_restore_that_cannot_be_written_writes_none_of_it(store: SqliteJobStore) -> None:
    await store.restore([restored_job("a", 1, JobState.COMPLETED)])
    with pytest.raises(StoreError, match=f"^cannot write store {store.path}: UNIQUE"):
        await store.restore(
            [restored_job("b", 2, JobState.COMPLETED), restored_job("a", 3, JobState.FAILED)]
        )
    page = await store.list("q", states=None, after=0, limit=10)
    assert [job.id for job in page.jobs] == ["a"]


async def test_a_scheduled_job_keeps_its_time_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    first = SqliteJobStore(path)
    await first.open()
    [scheduled] = await first.submit([NewJob("q", "later", 2, 3, run_at=50.0)], now=1.0)
    await first.close()
    again = SqliteJobStore(path)
    await again.open()
    assert await again.next_due("q") == 50.0
    assert await again.claim("q", "w", limit=1, lease=30.0, now=49.0) == []
    [claim] = await again.claim("q", "w", limit=1, lease=30.0, now=50.0)
    assert claim.id == scheduled.job.id and claim.job.scheduled_for == 50.0
    await again.close()
