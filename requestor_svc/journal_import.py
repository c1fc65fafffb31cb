"""The one-time import of an earlier release's journal (`requestor.sqlite3`, a
records store) into the durable core's SQLite JobStore, so that an upgrade
keeps every task under its id.

A queued task (or one that was running: the journal never says so, and its
run died with the process) becomes a waiting job, following its order again
from the start, as the journal's own restart did; a finished one becomes a
completed waiting job recording its outcome, swept after the retention like
any other. The jobs are restored in one transaction into a file that is then
renamed into place, and only after that is the journal renamed
`requestor.sqlite3.imported`, kept, never deleted: a crash at any point
leaves either the journal to import again or the import done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from queues.core.jobs import Job, JobState
from queues.core.sqlite_store import SqliteJobStore
from queues.records import load_records
from queues.sqlite_file import sync_directory
from queues.storage import Store
from queues.storage_sqlite import SqliteStore
from queues.task import TaskStatus
from queues.task_records import COLLECTION, StoredTask, TaskCodec
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JobArgsCodec, OrderJob, ProgressCodec
from requestor_svc.task_jobs import MAX_ATTEMPTS, WAITING, Outcome, TaskPayload, fingerprint

log = logging.getLogger(__name__)

_TASKS: TaskCodec[OrderProgress] = TaskCodec(JobArgsCodec(), ProgressCodec())


async def read_journal(store: Store) -> list[StoredTask[OrderProgress]]:
    """Every task the journal in store holds. Raises RecordError naming the
    first record that cannot be read, StoreError if store cannot be."""
    return await load_records(store, COLLECTION, _TASKS.decode)


async def import_journal(journal: Path, jobs_path: Path, *, default_timeout: float) -> int:
    """Import journal, if it is there and jobs_path is not yet, into a new
    SqliteJobStore at jobs_path; answers how many tasks it held. Raises
    RecordError or StoreError, leaving the journal as it was."""
    if not await asyncio.to_thread(journal.exists):
        return 0
    if not await asyncio.to_thread(jobs_path.exists):
        store = SqliteStore(journal)
        await store.open()
        try:
            tasks = await read_journal(store)
        finally:
            await store.close()
        importing = jobs_path.with_name(jobs_path.name + ".importing")
        for stale in _with_sidecars(importing):
            stale.unlink(missing_ok=True)
        jobs = SqliteJobStore(importing)
        await jobs.open()
        try:
            await jobs.restore([_job(task, default_timeout) for task in tasks])
        finally:
            await jobs.close()
        os.replace(importing, jobs_path)
        sync_directory(jobs_path.parent)
        log.info("imported the journal %s: %d tasks", journal, len(tasks))
    else:
        # A crash after the import, before the journal's rename.
        tasks = []
    imported = journal.with_name(journal.name + ".imported")
    for old, new in zip(_with_sidecars(journal), _with_sidecars(imported), strict=True):
        with contextlib.suppress(FileNotFoundError):
            os.replace(old, new)
    sync_directory(journal.parent)
    return len(tasks)


def _job(task: StoredTask[OrderProgress], default_timeout: float) -> Job:
    record = task.record
    job: OrderJob = record.kwargs["job"]
    progress = record.result or OrderProgress(record.order_req_id)
    deadline = record.deadline or record.created_at + default_timeout
    payload = TaskPayload(
        job.placement,
        job.request_id,
        deadline,
        record.queue_position,
        OrderProgress(record.order_req_id),
    )
    finished = record.status is not TaskStatus.QUEUED
    outcome = Outcome(record.status, record.error, progress, record.started_at, record.completed_at)
    return Job(
        id=record.task_id,
        queue=WAITING,
        seq=task.seq,
        # In placement order, as the journal served them.
        rank=float(task.seq),
        ready_at=record.created_at,
        payload=payload.encode(),
        priority=int(record.priority),
        state=JobState.COMPLETED if finished else JobState.AVAILABLE,
        max_attempts=MAX_ATTEMPTS,
        attempt=0,
        failures=0,
        created_at=record.created_at,
        run_at=None,
        lease_owner="",
        lease_until=None,
        result=outcome.encode() if finished else None,
        error="",
        finished_at=record.completed_at if finished else None,
        request_id=job.request_id,
        fingerprint=fingerprint(job.placement) if job.request_id else "",
        attempt_timeout=None,
        started_at=None,
        review=None,
    )


def _with_sidecars(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))]
