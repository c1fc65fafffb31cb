"""The store a service keeps its state in, as its options choose."""

import contextlib
from pathlib import Path

from queues.core.job_store import JobStore
from queues.core.log_store import LogStore
from queues.core.memory_log_store import MemoryLogStore
from queues.core.memory_store import MemoryJobStore
from queues.core.postgres_log_store import PostgresLogStore
from queues.core.postgres_store import PostgresJobStore
from queues.core.sqlite_log_store import SqliteLogStore
from queues.core.sqlite_store import SqliteJobStore
from queues.storage import CommitObserver
from service_runtime.config import ServerOptions
from service_runtime.data_dir_lock import locked_data_dir


def job_store_for(
    kind: str,
    database_url: str = "",
    *,
    sqlite_path: Path | None = None,
    commits: CommitObserver | None = None,
) -> JobStore:
    """An unopened JobStore (the durable core's) of kind memory, postgres (at
    database_url) or sqlite (at sqlite_path), telling commits of its group
    commits."""
    if kind == "postgres":
        return PostgresJobStore(database_url, commits=commits)
    if kind == "sqlite" and sqlite_path is not None:
        return SqliteJobStore(sqlite_path, commits=commits)
    if kind == "memory":
        return MemoryJobStore()
    raise ValueError(f"no JobStore of kind {kind!r}")


def log_store_for(
    kind: str,
    database_url: str = "",
    *,
    sqlite_path: Path | None = None,
    commits: CommitObserver | None = None,
) -> LogStore:
    """An unopened LogStore (the durable core's) of kind memory, postgres (at
    database_url) or sqlite (at sqlite_path), telling commits of its group
    commits (sqlite's; postgres's appends are not grouped)."""
    if kind == "postgres":
        return PostgresLogStore(database_url)
    if kind == "sqlite" and sqlite_path is not None:
        return SqliteLogStore(sqlite_path, commits=commits)
    if kind == "memory":
        return MemoryLogStore()
    raise ValueError(f"no LogStore of kind {kind!r}")


def store_lock(options: ServerOptions, name: str) -> contextlib.AbstractContextManager[None]:
    """What to hold, from before the service's store named name is opened until
    it is closed: the data dir's lock of that store (data_dir_lock); none for
    memory."""
    if options.store != "sqlite":
        # Memory is this process's; postgres is shared by replicas on purpose.
        return contextlib.nullcontext()
    return locked_data_dir(Path(options.data_dir), name)
