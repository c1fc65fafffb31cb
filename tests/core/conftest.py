"""The job_store fixture: each test of the contract runs on every backend."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queues.core.job_store import JobStore
from queues.core.memory_store import MemoryJobStore
from queues.core.sqlite_store import SqliteJobStore


@pytest.fixture(params=["memory", "sqlite"])
async def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    store: JobStore
    if request.param == "sqlite":
        store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    else:
        store = MemoryJobStore()
    await store.open()
    yield store
    await store.close()
