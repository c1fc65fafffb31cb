"""A JobStore in one SQLite file, in WAL mode: the embedded default.

The file, its checks on opening, its schema's migrations and its handling of a
full disk are sqlite_file.SqliteFile's. Every statement runs on the file's
thread, which owns the connection, so operations are serialised and a claim
never takes a job twice. The file admits one service (the data-dir lock);
worker processes that share it take SQLite's lock in turn (BEGIN IMMEDIATE).

Writes are group-committed, each in its own SAVEPOINT (sqlite_writes.py).
Reads run on the thread between batches.

seq is the table's INTEGER PRIMARY KEY AUTOINCREMENT: rising, and never reused
after a sweep, so a paging cursor never skips a job submitted later.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from queues.core import rules, submission
from queues.core.changes import ChangeHub, JobChange, Subscription
from queues.core.jobs import (
    Claim,
    Job,
    JobState,
    NewJob,
    Page,
    QueueCounts,
    Submitted,
    added,
    counts_from_groups,
)
from queues.core.sqlite_writes import SqliteAccess
from queues.errors import (
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
)
from queues.ids import random_id
from queues.records import FieldError, RecordError, check
from queues.sqlite_file import Migrations, SqliteFile
from queues.storage import CommitObserver

T = TypeVar("T")

# The job_counts triggers' two moves: a job counted into its (state,
# priority), and out of its old one.
_COUNT_NEW = """INSERT INTO job_counts VALUES (NEW.queue, NEW.state, NEW.priority, 1)
            ON CONFLICT (queue, state, priority) DO UPDATE SET count = count + 1"""
_COUNT_OLD = """UPDATE job_counts SET count = count - 1
            WHERE queue = OLD.queue AND state = OLD.state AND priority = OLD.priority"""

#: Each schema version's statements, applied in order to reach it. Append;
#: never edit a released entry.
MIGRATIONS: Migrations = (
    (
        """CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            queue TEXT NOT NULL,
            payload TEXT NOT NULL,
            priority INTEGER NOT NULL,
            state TEXT NOT NULL,
            max_attempts INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            created_at REAL NOT NULL,
            run_at REAL,
            lease_owner TEXT NOT NULL,
            lease_until REAL,
            result TEXT,
            error TEXT NOT NULL,
            finished_at REAL,
            request_id TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            attempt_timeout REAL,
            started_at REAL,
            review TEXT
        )""",
        "CREATE UNIQUE INDEX jobs_request ON jobs (queue, request_id) WHERE request_id <> ''",
        # The claim's order over what it may take.
        "CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = 'available'",
        "CREATE INDEX jobs_leased ON jobs (queue, lease_until) WHERE state = 'running'",
        "CREATE INDEX jobs_finished ON jobs (queue, finished_at) WHERE finished_at IS NOT NULL",
        "CREATE INDEX jobs_state ON jobs (queue, state, seq)",
    ),
    # The leases of periodic duties (lead()).
    ("CREATE TABLE leads (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL)",),
    # Counts kept by triggers as jobs move, so that stats() and the bound read a
    # few rows rather than count every job of the queue; and the indexes that
    # find stats' oldest waiting job and longest attempt without a scan.
    (
        """CREATE TABLE job_counts (
            queue TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (queue, state, priority)
        ) WITHOUT ROWID""",
        """INSERT INTO job_counts
            SELECT queue, state, priority, count(*) FROM jobs GROUP BY queue, state, priority""",
        f"""CREATE TRIGGER jobs_counted_in AFTER INSERT ON jobs BEGIN
            {_COUNT_NEW};
        END""",
        f"""CREATE TRIGGER jobs_counted_out AFTER DELETE ON jobs BEGIN
            {_COUNT_OLD};
        END""",
        f"""CREATE TRIGGER jobs_counted_moved AFTER UPDATE OF state, priority ON jobs
            WHEN NEW.state <> OLD.state OR NEW.priority <> OLD.priority BEGIN
            {_COUNT_OLD};
            {_COUNT_NEW};
        END""",
        "CREATE INDEX jobs_waiting_since ON jobs (queue, created_at) WHERE state = 'available'",
        "CREATE INDEX jobs_running_since ON jobs (queue, started_at) WHERE state = 'running'",
    ),
    # The trace each job was submitted in (NewJob.trace).
    ("ALTER TABLE jobs ADD COLUMN trace TEXT NOT NULL DEFAULT ''",),
)

_COLUMNS = (
    "id, queue, seq, payload, priority, state, max_attempts, attempt, failures, created_at,"
    " run_at, lease_owner, lease_until, result, error, finished_at, request_id, fingerprint,"
    " attempt_timeout, started_at, review, trace"
)
_UNLEASED = "lease_owner = '', lease_until = NULL"
# Answers a row when the lease was taken or renewed (lead()).
_LEAD = """INSERT INTO leads VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE leads.until <= ? OR leads.owner = excluded.owner
    RETURNING owner"""
# The best `limit` jobs a claim may take. Each half takes its best from its own
# partial index (one OR over both would scan every job of the queue); the
# best of both are taken.
_CLAIMABLE = """
    SELECT seq FROM (
        SELECT seq, priority FROM (
            SELECT seq, priority FROM jobs INDEXED BY jobs_ready
            WHERE queue = ? AND state = 'available' AND (run_at IS NULL OR run_at <= ?)
            ORDER BY priority DESC, seq LIMIT ?)
        UNION ALL
        SELECT seq, priority FROM (
            SELECT seq, priority FROM jobs INDEXED BY jobs_leased
            WHERE queue = ? AND state = 'running' AND lease_until <= ?
            LIMIT ?)
    ) ORDER BY priority DESC, seq LIMIT ?"""
_EXPIRED = """SELECT seq FROM jobs INDEXED BY jobs_leased
    WHERE queue = ? AND state = 'running' AND lease_until <= ? LIMIT ?"""
_UNFINISHED = """SELECT coalesce(sum(count), 0) FROM job_counts
    WHERE queue = ? AND state IN ('available', 'running')"""
_STATS = """
    SELECT state, priority, count,
        (SELECT created_at FROM jobs INDEXED BY jobs_waiting_since
            WHERE queue = ?1 AND state = 'available' ORDER BY created_at LIMIT 1),
        (SELECT started_at FROM jobs INDEXED BY jobs_running_since
            WHERE queue = ?1 AND state = 'running' ORDER BY started_at LIMIT 1)
    FROM job_counts WHERE queue = ?1 AND count <> 0"""


class _BrokenRowError(Exception):
    """A job row that cannot be decoded; the store makes it a RecordError naming itself."""

    def __init__(self, job_id: str, error: FieldError) -> None:
        super().__init__(job_id, error)
        self.job_id = job_id
        self.error = error


def _job(row: tuple[Any, ...]) -> Job:
    try:
        return _decode(row)
    except FieldError as error:
        raise _BrokenRowError(row[0], error) from error


def _decode(row: tuple[Any, ...]) -> Job:
    (job_id, queue, seq, payload, priority, state, max_attempts, attempt, failures) = row[:9]
    (created_at, run_at, lease_owner, lease_until, result, error, finished_at) = row[9:16]
    request_id, fingerprint, attempt_timeout, started_at, review, trace = row[16:]
    return Job(
        id=job_id,
        queue=queue,
        seq=seq,
        payload=_json(payload, "payload"),
        priority=priority,
        state=check(state, JobState, "state"),
        max_attempts=max_attempts,
        attempt=attempt,
        failures=failures,
        created_at=created_at,
        run_at=run_at,
        lease_owner=lease_owner,
        lease_until=lease_until,
        result=None if result is None else _json(result, "result"),
        error=error,
        finished_at=finished_at,
        request_id=request_id,
        fingerprint=fingerprint,
        attempt_timeout=attempt_timeout,
        started_at=started_at,
        review=None if review is None else _json(review, "review"),
        trace=trace,
    )


def _json(text: str, name: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise FieldError(f"field {name!r} is not JSON: {error}") from error


class SqliteJobStore:
    def __init__(self, path: Path, *, commits: CommitObserver | None = None) -> None:
        """commits: told of each group commit (its seconds and size)."""
        self.path = path
        self.name = str(path)
        self._hub: ChangeHub[JobChange] = ChangeHub()
        self._file = SqliteFile(
            path, MIGRATIONS, synchronous="FULL", thread_name=f"sqlite-jobs-{path.name}"
        )
        self._access = SqliteAccess(self._file, self._hub, commits)

    async def open(self) -> None:
        await self._access.open()

    async def close(self) -> None:
        await self._access.close()

    async def submit(
        self, jobs: Sequence[NewJob], *, now: float, max_unfinished: int | None = None
    ) -> list[Submitted]:
        return await self._write(
            lambda c: _submit(c, jobs, now, max_unfinished),
            lambda submitted: (s.job for s in submitted if s.created),
        )

    async def claim_new(
        self, job: NewJob, *, owner: str, lease: float, now: float, max_unfinished: int | None
    ) -> Claim:
        def claim_new(c: sqlite3.Connection) -> Claim:
            [submitted] = _submit(c, [job], now, max_unfinished)
            row = c.execute(
                f"""UPDATE jobs SET state = 'running', attempt = 1, lease_owner = ?,
                    lease_until = ?, started_at = ?
                WHERE id = ? RETURNING {_COLUMNS}""",
                (owner, now + lease, now, submitted.job.id),
            ).fetchone()
            claimed = _job(row)
            return Claim(claimed, claimed.attempt)

        return await self._write(claim_new, lambda claim: [claim.job])

    async def claim(
        self, queue: str, owner: str, *, limit: int, lease: float, now: float
    ) -> list[Claim]:
        def claim(c: sqlite3.Connection) -> list[Claim]:
            # The leases the claim may take over, read first: RETURNING sees
            # the new row only. The index makes it cheap while none expired.
            expired = {seq for (seq,) in c.execute(_EXPIRED, (queue, now, limit))}
            rows = c.execute(
                f"""UPDATE jobs SET state = 'running', attempt = attempt + 1,
                    lease_owner = ?, lease_until = ?, run_at = NULL, started_at = ?
                WHERE seq IN ({_CLAIMABLE})
                RETURNING {_COLUMNS}""",
                (owner, now + lease, now, queue, now, limit, queue, now, limit, limit),
            ).fetchall()
            # RETURNING keeps no order.
            claimed = sorted((_job(row) for row in rows), key=rules.claim_order)
            return [Claim(job, job.attempt, job.seq in expired) for job in claimed]

        return await self._write(claim, lambda claims: (claim.job for claim in claims))

    async def extend(self, claims: Sequence[Claim], *, lease: float, now: float) -> list[bool]:
        def extend(c: sqlite3.Connection) -> list[bool]:
            return [
                c.execute(
                    "UPDATE jobs SET lease_until = ? WHERE id = ? AND state = 'running'"
                    " AND attempt = ?",
                    (now + lease, claim.id, claim.token),
                ).rowcount
                == 1
                for claim in claims
            ]

        return await self._write(extend)

    async def complete(self, claim: Claim, result: Any, *, hold: bool, now: float) -> Job:
        encoded = orjson.dumps(result).decode()
        if hold:
            return await self._fenced(claim, f"state = 'held', result = ?, {_UNLEASED}", (encoded,))
        return await self._fenced(
            claim, f"state = 'completed', result = ?, finished_at = ?, {_UNLEASED}", (encoded, now)
        )

    async def update(self, claim: Claim, payload: Any, *, now: float) -> Job:
        return await self._fenced(claim, "payload = ?", (orjson.dumps(payload).decode(),))

    async def release(self, claim: Claim, *, now: float) -> Job:
        return await self._fenced(claim, f"state = 'available', run_at = NULL, {_UNLEASED}", ())

    async def retry(self, claim: Claim, error: str, *, run_at: float, now: float) -> Job:
        return await self._fenced(
            claim,
            f"state = 'available', failures = failures + 1, error = ?, run_at = ?, {_UNLEASED}",
            (error, run_at),
        )

    async def fail(self, claim: Claim, error: str, *, now: float) -> Job:
        return await self._fenced(
            claim,
            f"state = 'failed', failures = failures + 1, error = ?, finished_at = ?, {_UNLEASED}",
            (error, now),
        )

    async def cancel(self, job_id: str, *, now: float) -> Job:
        return await self._transition(
            job_id, "cancel", f"state = 'cancelled', finished_at = ?, {_UNLEASED}", (now,)
        )

    async def redrive(self, job_id: str, *, now: float) -> Job:
        return await self._transition(
            job_id,
            "redrive",
            "state = 'available', failures = 0, run_at = NULL, finished_at = NULL",
            (),
        )

    async def decide(self, job_id: str, *, approve: bool, review: Any, now: float) -> Job:
        operation = "approve" if approve else "reject"
        state = rules.TRANSITIONS[operation][1]
        return await self._transition(
            job_id,
            operation,
            "state = ?, finished_at = ?, review = ?",
            (state.value, now, orjson.dumps(review).decode()),
        )

    async def get(self, job_id: str) -> Job:
        def get(c: sqlite3.Connection) -> Job:
            return _get(c, job_id)

        return await self._read(get)

    async def list(
        self, queue: str, *, states: frozenset[JobState] | None, after: int, limit: int
    ) -> Page:
        def page(c: sqlite3.Connection) -> Page:
            chosen = sorted(JobState if states is None else states)
            marks = ", ".join("?" * len(chosen))
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE queue = ? AND seq > ?"
                f" AND state IN ({marks}) ORDER BY seq LIMIT ?",
                (queue, after, *chosen, limit + 1),
            ).fetchall()
            jobs = [_job(row) for row in rows[:limit]]
            return Page(jobs, jobs[-1].seq if len(rows) > limit and jobs else None)

        return await self._read(page)

    async def stats(self, queue: str) -> QueueCounts:
        def stats(c: sqlite3.Connection) -> QueueCounts:
            return counts_from_groups(c.execute(_STATS, (queue,)).fetchall())

        return await self._read(stats)

    async def lead(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        def lead(c: sqlite3.Connection) -> bool:
            taken = c.execute(_LEAD, (name, owner, now + ttl, now)).fetchone()
            return taken is not None

        return await self._write(lead)

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        def sweep(c: sqlite3.Connection) -> int:
            finals = [state.value for state in JobState if state.is_final]
            return c.execute(
                f"""DELETE FROM jobs WHERE seq IN (
                    SELECT seq FROM jobs WHERE queue = ? AND finished_at < ?
                    AND state IN ({", ".join("?" * len(finals))}) ORDER BY seq LIMIT ?)""",
                (queue, finished_before, *finals, limit),
            ).rowcount

        return await self._write(sweep)

    async def restore(self, jobs: Sequence[Job]) -> None:
        """Insert jobs exactly as given (id, seq, state, lease and every other
        field kept), all or none, in one transaction: what an import of jobs
        kept elsewhere writes, into a store nothing else uses yet. Announces
        nothing. Raises StoreError naming the file if they cannot be written (an
        id or seq the store holds already among them)."""
        rows = [
            (
                job.id,
                job.queue,
                job.seq,
                orjson.dumps(job.payload).decode(),
                job.priority,
                job.state.value,
                job.max_attempts,
                job.attempt,
                job.failures,
                job.created_at,
                job.run_at,
                job.lease_owner,
                job.lease_until,
                None if job.result is None else orjson.dumps(job.result).decode(),
                job.error,
                job.finished_at,
                job.request_id,
                job.fingerprint,
                job.attempt_timeout,
                job.started_at,
                None if job.review is None else orjson.dumps(job.review).decode(),
                job.trace,
            )
            for job in jobs
        ]

        def restore(c: sqlite3.Connection) -> None:
            c.executemany(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 22)})", rows)

        await self._write(restore)

    async def _fenced(self, claim: Claim, changes: str, values: tuple[Any, ...]) -> Job:
        """Apply changes to the claim's job if the claim still holds it (rules.holds)."""

        def fenced(c: sqlite3.Connection) -> Job:
            row = c.execute(
                f"UPDATE jobs SET {changes} WHERE id = ? AND state = 'running'"
                f" AND attempt = ? RETURNING {_COLUMNS}",
                (*values, claim.id, claim.token),
            ).fetchone()
            if row is None:
                raise LostClaimError(claim.id, claim.token)
            return _job(row)

        return await self._write(fenced, _itself)

    async def _transition(
        self, job_id: str, operation: str, changes: str, values: tuple[Any, ...]
    ) -> Job:
        def transition(c: sqlite3.Connection) -> Job:
            job = _get(c, job_id)
            if job.state not in rules.TRANSITIONS[operation][0]:
                raise InvalidStateError("job", job_id, job.state.value, operation)
            row = c.execute(
                f"UPDATE jobs SET {changes} WHERE id = ? RETURNING {_COLUMNS}",
                (*values, job_id),
            ).fetchone()
            return _job(row)

        return await self._write(transition, _itself)

    def subscribe(self, queue: str) -> contextlib.AbstractContextManager[Subscription[JobChange]]:
        return self._hub.subscribe(queue)

    async def next_due(self, queue: str) -> float | None:
        def due(c: sqlite3.Connection) -> float | None:
            (when,) = c.execute(
                """SELECT min(at) FROM (
                    SELECT min(run_at) AS at FROM jobs WHERE queue = ? AND state = 'available'
                    UNION ALL
                    SELECT min(lease_until) FROM jobs WHERE queue = ? AND state = 'running')""",
                (queue, queue),
            ).fetchone()
            return None if when is None else float(when)

        return await self._read(due)

    async def _write(
        self,
        work: Callable[[sqlite3.Connection], T],
        changed: Callable[[T], Iterable[Job]] = lambda _: (),
    ) -> T:
        """work's answer, once the transaction it ran in is committed; the jobs
        changed(answer) names are announced then."""
        with self._naming_broken_rows():
            return await self._access.write(work, lambda answer: map(_change, changed(answer)))

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._naming_broken_rows():
            return await self._access.read(work)

    @contextlib.contextmanager
    def _naming_broken_rows(self) -> Iterator[None]:
        """A row that cannot be decoded is raised as the RecordError naming the
        store, the collection and the job, in one line."""
        try:
            yield
        except _BrokenRowError as broken:
            raise RecordError.broken(self.name, "jobs", broken.job_id, broken.error) from broken


def _change(job: Job) -> JobChange:
    return JobChange(job.queue, job.id, job.state)


def _itself(job: Job) -> list[Job]:
    return [job]


def _submit(
    c: sqlite3.Connection,
    jobs: Sequence[NewJob],
    now: float,
    max_unfinished: int | None,
) -> list[Submitted]:
    planned = submission.plan(jobs, lambda new: _seen(c, new))
    if max_unfinished is not None:
        for queue, count in submission.adding(planned).items():
            (unfinished,) = c.execute(_UNFINISHED, (queue,)).fetchone()
            if unfinished + count > max_unfinished:
                raise QueueFullError(max_unfinished, 0.0)
    return submission.carry_out(planned, lambda new: _insert(c, new, now))


def _get(c: sqlite3.Connection, job_id: str) -> Job:
    row = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise NotFoundError("job", job_id)
    return _job(row)


def _seen(c: sqlite3.Connection, new: NewJob) -> Job | None:
    row = c.execute(
        # "<> ''" lets the planner use the partial index jobs_request, which
        # it cannot prove a bound value meets: without it, a scan of every job.
        f"SELECT {_COLUMNS} FROM jobs WHERE queue = ? AND request_id = ? AND request_id <> ''",
        (new.queue, new.request_id),
    ).fetchone()
    return None if row is None else _job(row)


def _insert(c: sqlite3.Connection, new: NewJob, now: float) -> Job:
    job_id = random_id()
    payload = orjson.dumps(new.payload)
    cursor = c.execute(
        """INSERT INTO jobs (id, queue, payload, priority, state, max_attempts, attempt,
            failures, created_at, lease_owner, error, request_id, fingerprint, attempt_timeout,
            trace)
        VALUES (?, ?, ?, ?, 'available', ?, 0, 0, ?, '', '', ?, ?, ?, ?)""",
        (
            job_id,
            new.queue,
            payload.decode(),
            new.priority,
            new.max_attempts,
            now,
            new.request_id,
            new.fingerprint,
            new.attempt_timeout,
            new.trace,
        ),
    )
    # The row as inserted, built here rather than read back (RETURNING): a
    # submission's largest cost on the file's thread. The payload goes through
    # JSON as a read would, so the job holds no object of the caller's.
    assert cursor.lastrowid is not None
    return added(new, job_id=job_id, seq=cursor.lastrowid, payload=orjson.loads(payload), now=now)
