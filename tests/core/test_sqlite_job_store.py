"""What SqliteJobStore adds to the contract: its file outlives the process."""

import sqlite3
from pathlib import Path

import pytest

from queues.core.jobs import JobState, NewJob
from queues.core.sqlite_store import SqliteJobStore
from queues.storage import StoreError


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
