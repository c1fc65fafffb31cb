"""The job_store fixture: each test of the contract runs on every backend."""

from collections.abc import AsyncIterator

import pytest

from queues.core.job_store import JobStore
from queues.core.memory_store import MemoryJobStore


@pytest.fixture(params=["memory"])
async def job_store(request: pytest.FixtureRequest) -> AsyncIterator[JobStore]:
    store: JobStore = MemoryJobStore()
    await store.open()
    yield store
    await store.close()
