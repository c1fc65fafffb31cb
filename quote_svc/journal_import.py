"""The one-time import of an earlier release's journal (`quote.sqlite3`, the
records store of the journaled queue, read as queues/message_records.py) into the
durable core's SqliteJobStore (`quote-jobs.sqlite3`), so that an upgrade keeps
every message a client was told of: its id, seq (paging cursors), status,
attempts, error, result, review, times, request id and fingerprint.

The journal is read as the journaled queue read it at start (load_records with
its MessageCodec), so a journal it would have refused (a broken record, a newer
schema) is refused with the same one-line error, and left as it was.

Each message becomes a job as queues/store_queue.py lays one out: the payload
{"p": the encoded payload}, plus "inline": true for a RunQuote (a FAILED
message that was not dead-lettered); the result {"r": the encoded result,
"why": the review reason}; the review [decision, reviewer, note, at]; the job
state of its status. A message the journal says was PROCESSING is AVAILABLE:
its attempt died with the old process.

Crash-safe by renames: the jobs are written whole into
`quote-jobs.sqlite3.importing`, which is closed and renamed
`quote-jobs.sqlite3` (the import's commit point), then the journal is renamed
`quote.sqlite3.imported`: kept, never deleted. At the next start, a jobs file
with the journal still beside it only has that last rename finished, and a
`.importing` file left by a crash is removed and the import done again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from queues.core.jobs import Job, JobState
from queues.core.sqlite_store import SqliteJobStore
from queues.message import Message, MessageStatus
from queues.message_records import COLLECTION, MessageCodec, RequestFacts
from queues.records import load_records
from queues.sqlite_file import sync_directory
from queues.storage import Store, StoreError
from queues.storage_sqlite import SqliteStore

log = logging.getLogger(__name__)

#: The journal of earlier releases, in the data dir.
JOURNAL = "quote.sqlite3"
#: The core's SqliteJobStore the quote queue runs over, in the data dir.
JOBS = "quote-jobs.sqlite3"

_STATE = {
    MessageStatus.PENDING: JobState.AVAILABLE,
    # Never written by the journaled queue; had it been, its attempt died with it.
    MessageStatus.PROCESSING: JobState.AVAILABLE,
    MessageStatus.AWAITING_REVIEW: JobState.HELD,
    MessageStatus.COMPLETED: JobState.COMPLETED,
    MessageStatus.FAILED: JobState.FAILED,
    MessageStatus.CANCELLED: JobState.CANCELLED,
    MessageStatus.REJECTED: JobState.REJECTED,
}
_SIDECARS = ("-wal", "-shm")


def jobs_path(data_dir: Path) -> Path:
    return data_dir / JOBS


async def import_journal(data_dir: Path, *, queue: str, codec: MessageCodec[Any, Any]) -> int:
    """Bring data_dir to a state with no journal left to import: import
    `quote.sqlite3` into `quote-jobs.sqlite3` (as jobs of queue) if the first
    is there and the second is not, or finish the rename a crash cut short.
    Answers how many messages were imported (0 when none was).

    Raises StoreError naming the journal if it cannot be opened or read, and
    RecordError naming its record for one that cannot be decoded: the journal
    is then left as it was, no jobs file is made, and the next start tries
    again. StoreError naming the new file if it cannot be written."""
    journal = data_dir / JOURNAL
    jobs = jobs_path(data_dir)
    importing = _beside(jobs, ".importing")
    if not await asyncio.to_thread(_exists, journal):
        return 0
    if await asyncio.to_thread(_exists, jobs):
        # A crash came between the two renames: the jobs file is whole.
        await asyncio.to_thread(_remove, importing)
        kept = await asyncio.to_thread(_retire, journal)
        log.info("finished importing the journal %s: it is kept as %s", journal, kept.name)
        return 0
    store = SqliteStore(journal)
    await store.open()
    try:
        messages = await read_journal(store, codec)
    finally:
        await store.close()
    await asyncio.to_thread(_remove, importing)
    written = SqliteJobStore(importing)
    await written.open()
    try:
        await written.restore([message_job(m, facts, codec, queue) for m, facts in messages])
    finally:
        await written.close()
    await asyncio.to_thread(_commit, importing, jobs)
    kept = await asyncio.to_thread(_retire, journal)
    log.info(
        "imported %d messages from the journal %s into %s; the journal is kept as %s",
        len(messages),
        journal,
        jobs.name,
        kept.name,
    )
    return len(messages)


async def read_journal(
    store: Store, codec: MessageCodec[Any, Any]
) -> list[tuple[Message[Any, Any], RequestFacts | None]]:
    """Every message of the journal in store with the facts of its request, as
    the journaled queue recovered them. Raises RecordError naming the first
    record that cannot be read, StoreError if store cannot be."""
    return await load_records(store, COLLECTION, codec.message)


def message_job(
    message: Message[Any, Any],
    facts: RequestFacts | None,
    codec: MessageCodec[Any, Any],
    queue: str,
) -> Job:
    """The job of queue that StoreMessageQueue reads back as message."""
    payload: dict[str, Any] = {"p": codec.payload.encode(message.payload)}
    if message.status is MessageStatus.FAILED and not message.dead_lettered:
        payload["inline"] = True  # only RunQuote failed without a dead letter
    result = None
    if message.result is not None:
        result = {"r": codec.result.encode(message.result), "why": message.review_reason}
    review = message.review
    return Job(
        id=message.id,
        queue=queue,
        seq=message.seq,
        # In submission order, as the journal served them.
        rank=float(message.seq),
        ready_at=message.created_at,
        payload=payload,
        priority=int(message.priority),
        state=_STATE[message.status],
        max_attempts=message.max_retries + 1,
        # The fencing token of the next claim; the attempts before it are gone.
        attempt=message.retry_count + (result is not None),
        failures=message.retry_count,
        created_at=message.created_at,
        run_at=message.next_attempt_at,
        lease_owner="",
        lease_until=None,
        result=result,
        error=message.error_message,
        finished_at=message.completed_at,
        request_id=message.request_id,
        fingerprint="" if facts is None else str(facts.fingerprint),
        attempt_timeout=message.attempt_timeout,
        started_at=message.started_at,
        review=None
        if review is None
        else [review.decision.value, review.reviewer, review.note, review.reviewed_at],
    )


# -- the files, on a thread ------------------------------------------------------


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _imported(journal: Path) -> Path:
    """Where the journal is kept once imported: `.imported`, or, should an
    earlier import have kept one there already, the first free `.imported.<n>`."""
    kept = _beside(journal, ".imported")
    n = 1
    while os.path.lexists(kept):
        n += 1
        kept = _beside(journal, f".imported.{n}")
    return kept


def _with_sidecars(path: Path) -> Iterator[Path]:
    yield path
    for sidecar in _SIDECARS:
        yield _beside(path, sidecar)


def _remove(path: Path) -> None:
    """Remove what an import cut short left at path, with its sidecars."""
    for each in _with_sidecars(path):
        with contextlib.suppress(FileNotFoundError):
            each.unlink()


def _commit(importing: Path, jobs: Path) -> None:
    """Make the whole import the jobs file, durably. Closing the store folded
    its WAL into the file; one left beside it would be lost by the rename."""
    left = [each.name for each in _with_sidecars(importing) if each != importing and each.exists()]
    if left:
        raise StoreError(f"cannot finish the import into {jobs}: {', '.join(left)} is left over")
    _sync_file(importing)
    os.replace(importing, jobs)
    sync_directory(jobs.parent)


def _retire(journal: Path) -> Path:
    """Rename the journal (and any sidecars) to .imported, durably; answers
    its new path."""
    imported = _imported(journal)
    for sidecar in _SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.replace(_beside(journal, sidecar), _beside(imported, sidecar))
    os.replace(journal, imported)
    sync_directory(journal.parent)
    return imported


def _sync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
