"""The job_store and log_store fixtures: each test of a contract runs on every backend."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from support.postgres import fresh_database

from queues.core.job_store import JobStore
from queues.core.log_store import LogStore
from queues.core.memory_log_store import MemoryLogStore
from queues.core.memory_store import MemoryJobStore
from queues.core.postgres_log_store import PostgresLogStore
from queues.core.postgres_store import PostgresJobStore
from queues.core.sqlite_log_store import SqliteLogStore
from queues.core.sqlite_store import SqliteJobStore


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    store: JobStore
    resources = AsyncExitStack()
    if request.param == "sqlite":
        store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    elif request.param == "postgres":
        store = PostgresJobStore(await resources.enter_async_context(fresh_database()))
    else:
        store = MemoryJobStore()
    await store.open()
    yield store
    await store.close()
    await resources.aclose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def log_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogStore]:
    store: LogStore
    resources = AsyncExitStack()
    if request.param == "sqlite":
        store = SqliteLogStore(tmp_path / "logs.sqlite3")
    elif request.param == "postgres":
        store = PostgresLogStore(await resources.enter_async_context(fresh_database()))
    else:
        store = MemoryLogStore()
    await store.open()
    yield store
    await store.close()
    await resources.aclose()
