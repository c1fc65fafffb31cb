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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson

from queues.core import fairness, rate_limits, rules, submission
from queues.core.changes import ChangeHub, JobChange, Subscription
from queues.core.fairness import NO_POLICY, ClaimPolicy
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
    ready_at,
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

# Each key's next rank past its highest, and each queue's clock at its first
# available job (or past every job): what the ranks of jobs made before
# fairness, or restored, need for new ones to rank after them.
_SEED_KEYS = """INSERT INTO fair_keys
    SELECT queue, fairness_key, max(rank) + 1, sum(state = 'available') FROM jobs
    WHERE true GROUP BY queue, fairness_key
    ON CONFLICT (queue, key) DO UPDATE SET
        next_rank = max(next_rank, excluded.next_rank), pending = excluded.pending"""
_SEED_CLOCKS = """INSERT INTO fair_clocks
    SELECT queue, coalesce(min(CASE WHEN state = 'available' THEN rank END), max(rank) + 1)
    FROM jobs WHERE true GROUP BY queue
    ON CONFLICT (queue) DO UPDATE SET clock = max(clock, excluded.clock)"""
# A job counted out of its key's pending (one added is counted by its submission).
_PENDING_DOWN = """UPDATE fair_keys SET pending = pending - 1
            WHERE queue = OLD.queue AND key = OLD.fairness_key"""

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
    # Fairness keys, aging and rate limits (fairness.py, rate_limits.py). Jobs
    # kept from before are ranked in submission order, and due since
    # submission; the claim's indexes hold the jobs due without a time (the
    # ones with one are read by it, jobs_due).
    (
        "ALTER TABLE jobs ADD COLUMN fairness_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN rank REAL NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN ready_at REAL NOT NULL DEFAULT 0",
        "UPDATE jobs SET rank = seq, ready_at = created_at",
        """CREATE TABLE fair_keys (
            queue TEXT NOT NULL,
            key TEXT NOT NULL,
            next_rank REAL NOT NULL,
            pending INTEGER NOT NULL,
            PRIMARY KEY (queue, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX fair_keys_busiest ON fair_keys (queue, pending DESC, key)",
        "CREATE TABLE fair_clocks (queue TEXT PRIMARY KEY, clock REAL NOT NULL) WITHOUT ROWID",
        """CREATE TABLE rate_limits (
            queue TEXT NOT NULL,
            key TEXT NOT NULL,
            per_second REAL NOT NULL,
            burst INTEGER NOT NULL,
            tokens REAL NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (queue, key)
        ) WITHOUT ROWID""",
        _SEED_KEYS,
        _SEED_CLOCKS,
        f"""CREATE TRIGGER fair_keys_out AFTER DELETE ON jobs
            WHEN OLD.state = 'available' BEGIN {_PENDING_DOWN}; END""",
        """CREATE TRIGGER fair_keys_moved AFTER UPDATE OF state ON jobs
            WHEN (NEW.state = 'available') <> (OLD.state = 'available') BEGIN
            INSERT INTO fair_keys SELECT NEW.queue, NEW.fairness_key, 0, 1
                WHERE NEW.state = 'available'
                ON CONFLICT (queue, key) DO UPDATE SET pending = pending + 1;
            UPDATE fair_keys SET pending = pending - 1
                WHERE queue = OLD.queue AND key = OLD.fairness_key AND OLD.state = 'available';
        END""",
        "DROP INDEX jobs_ready",
        """CREATE INDEX jobs_fair ON jobs (queue, priority DESC, rank, seq)
            WHERE state = 'available' AND run_at IS NULL""",
        """CREATE INDEX jobs_aging ON jobs (queue, priority, ready_at)
            WHERE state = 'available' AND run_at IS NULL""",
        """CREATE INDEX jobs_due ON jobs (queue, run_at)
            WHERE state = 'available' AND run_at IS NOT NULL""",
        "CREATE INDEX jobs_running_keys ON jobs (queue, fairness_key) WHERE state = 'running'",
    ),
)

_COLUMNS = (
    "id, queue, seq, payload, priority, state, max_attempts, attempt, failures, created_at,"
    " run_at, lease_owner, lease_until, result, error, finished_at, request_id, fingerprint,"
    " attempt_timeout, started_at, review, trace, fairness_key, rank, ready_at"
)
_UNLEASED = "lease_owner = '', lease_until = NULL"
# Answers a row when the lease was taken or renewed (lead()).
_LEAD = """INSERT INTO leads VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE leads.until <= ? OR leads.owner = excluded.owner
    RETURNING owner"""
# What a claim chooses from (fairness.py): per priority, the first due jobs in
# rank order and, with aging, the longest due; the jobs with a time (a
# schedule, a backoff) that has come; and expired leases. Each passes over
# the keys given as a JSON array; each reads from its own partial index.
_CANDIDATE = "seq, id, priority, rank, ready_at, fairness_key"
_PASSED = "fairness_key NOT IN (SELECT value FROM json_each(?))"
# Each read is a subquery, so that it keeps its own ORDER BY and LIMIT; a
# claim's reads go as one statement (_reads).
_BY_RANK = f"""SELECT * FROM (SELECT {_CANDIDATE}, 0 FROM jobs INDEXED BY jobs_fair
    WHERE queue = ? AND state = 'available' AND run_at IS NULL AND {_PASSED}
    ORDER BY priority DESC, rank, seq LIMIT ?)"""
_BY_AGE = f"""SELECT * FROM (SELECT {_CANDIDATE}, 0 FROM jobs INDEXED BY jobs_aging
    WHERE queue = ? AND state = 'available' AND run_at IS NULL AND priority = ? AND {_PASSED}
    ORDER BY ready_at LIMIT ?)"""
_DUE = f"""SELECT * FROM (SELECT {_CANDIDATE}, 0 FROM jobs INDEXED BY jobs_due
    WHERE queue = ? AND state = 'available' AND run_at <= ? AND {_PASSED}
    ORDER BY run_at LIMIT ?)"""
_EXPIRED = f"""SELECT * FROM (SELECT {_CANDIDATE}, 1 FROM jobs INDEXED BY jobs_leased
    WHERE queue = ? AND state = 'running' AND lease_until <= ? AND {_PASSED} LIMIT ?)"""
_PRIORITIES = """SELECT priority FROM job_counts
    WHERE queue = ? AND state = 'available' AND count > 0"""
_RUNNING_KEYS = """SELECT fairness_key, count(*) FROM jobs INDEXED BY jobs_running_keys
    WHERE queue = ? AND state = 'running' GROUP BY fairness_key"""
_RANK_STATE = """SELECT NULL, clock FROM fair_clocks WHERE queue = ?
    UNION ALL SELECT key, next_rank FROM fair_keys
    WHERE queue = ? AND key IN (SELECT value FROM json_each(?))"""
_BUCKETS = "SELECT key, per_second, burst, tokens, at FROM rate_limits WHERE queue = ?"
_BUSIEST = f"""SELECT key, pending FROM fair_keys INDEXED BY fair_keys_busiest
    WHERE queue = ? AND pending > 0 ORDER BY pending DESC, key LIMIT {fairness.BUSIEST_KEYS}"""
# The keys whose next rank the clock has reached (fairness.forgettable), and
# with nothing pending, since here the key's row also holds its pending count.
_FORGET_KEYS = """DELETE FROM fair_keys WHERE (queue, key) IN (
    SELECT queue, key FROM fair_keys INDEXED BY fair_keys_busiest
    WHERE queue = ? AND pending = 0
        AND next_rank <= (SELECT clock FROM fair_clocks WHERE queue = ?)
    LIMIT ?)"""
_UNFINISHED = """SELECT coalesce(sum(count), 0) FROM job_counts
    WHERE queue = ? AND state IN ('available', 'running')"""
_STATS = """
    SELECT state, priority, count,
        (SELECT created_at FROM jobs INDEXED BY jobs_waiting_since
            WHERE queue = ?1 AND state = 'available' ORDER BY created_at LIMIT 1),
        (SELECT started_at FROM jobs INDEXED BY jobs_running_since
            WHERE queue = ?1 AND state = 'running' ORDER BY started_at LIMIT 1)
    FROM job_counts WHERE queue = ?1 AND count <> 0"""


class _Ready(NamedTuple):
    """A job a claim may take, as fairness.choose reads it."""

    seq: int
    id: str
    priority: int
    rank: float
    ready_at: float
    fairness_key: str
    taken_over: int


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
    request_id, fingerprint, attempt_timeout, started_at, review, trace = row[16:22]
    fairness_key, rank, ready_at = row[22:]
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
        fairness_key=fairness_key,
        rank=rank,
        ready_at=ready_at,
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
        self,
        queue: str,
        owner: str,
        *,
        limit: int,
        lease: float,
        now: float,
        policy: ClaimPolicy = NO_POLICY,
    ) -> list[Claim]:
        def claim(c: sqlite3.Connection) -> list[Claim]:
            buckets = _buckets(c, queue)
            chosen = _choose(c, queue, limit, now, policy, buckets)
            if not chosen:
                return []
            seqs = [ready.seq for ready in chosen]
            rows = c.execute(
                f"""UPDATE jobs SET state = 'running', attempt = attempt + 1,
                    lease_owner = ?, lease_until = ?, run_at = NULL, started_at = ?
                WHERE seq IN (SELECT value FROM json_each(?))
                RETURNING {_COLUMNS}""",
                (owner, now + lease, now, orjson.dumps(seqs).decode()),
            ).fetchall()
            c.execute(
                """INSERT INTO fair_clocks VALUES (?, ?)
                ON CONFLICT (queue) DO UPDATE SET clock = max(clock, excluded.clock)""",
                (queue, max(ready.rank for ready in chosen)),
            )
            if buckets:
                _take_tokens(c, queue, buckets, chosen, now)
            taken_over = {ready.seq for ready in chosen if ready.taken_over}
            # RETURNING keeps no order.
            claimed = sorted(
                (_job(row) for row in rows), key=lambda job: fairness.claim_order(job, now, policy)
            )
            return [Claim(job, job.attempt, job.seq in taken_over) for job in claimed]

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
            busiest = tuple(c.execute(_BUSIEST, (queue,)).fetchall())
            return counts_from_groups(c.execute(_STATS, (queue,)).fetchall(), busiest)

        return await self._read(stats)

    async def lead(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        def lead(c: sqlite3.Connection) -> bool:
            taken = c.execute(_LEAD, (name, owner, now + ttl, now)).fetchone()
            return taken is not None

        return await self._write(lead)

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        def sweep(c: sqlite3.Connection) -> int:
            finals = [state.value for state in JobState if state.is_final]
            swept = c.execute(
                f"""DELETE FROM jobs WHERE seq IN (
                    SELECT seq FROM jobs WHERE queue = ? AND finished_at < ?
                    AND state IN ({", ".join("?" * len(finals))}) ORDER BY seq LIMIT ?)""",
                (queue, finished_before, *finals, limit),
            ).rowcount
            c.execute(_FORGET_KEYS, (queue, queue, limit))
            return swept

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
                job.fairness_key,
                job.rank,
                job.ready_at,
            )
            for job in jobs
        ]

        def restore(c: sqlite3.Connection) -> None:
            c.executemany(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 25)})", rows)
            # New jobs rank after the restored ones.
            c.execute(_SEED_KEYS)
            c.execute(_SEED_CLOCKS)

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
                    SELECT min(run_at) AS at FROM jobs INDEXED BY jobs_due
                        WHERE queue = ? AND state = 'available' AND run_at IS NOT NULL
                    UNION ALL
                    SELECT min(lease_until) FROM jobs WHERE queue = ? AND state = 'running')""",
                (queue, queue),
            ).fetchone()
            # Only a key with work waiting wakes a worker when its token is due.
            tokens = [
                rate_limits.next_token(bucket, bucket.at)
                for key, bucket in _buckets(c, queue).items()
                if bucket.tokens < 1 and _pending(c, queue, key)
            ]
            return min([*tokens, *([] if when is None else [float(when)])], default=None)

        return await self._read(due)

    async def set_rate_limit(
        self, queue: str, key: str, limit: rate_limits.RateLimit | None, *, now: float
    ) -> None:
        def set_limit(c: sqlite3.Connection) -> None:
            if limit is None:
                c.execute("DELETE FROM rate_limits WHERE queue = ? AND key = ?", (queue, key))
                return
            bucket = rate_limits.fresh(limit, _buckets(c, queue).get(key), now)
            c.execute(
                "INSERT OR REPLACE INTO rate_limits VALUES (?, ?, ?, ?, ?, ?)",
                (queue, key, limit.per_second, limit.burst, bucket.tokens, bucket.at),
            )

        await self._write(set_limit)
        # Idle workers claim again under the new limit.
        self._hub.publish(JobChange(queue, "", JobState.AVAILABLE))

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
    ranks = iter(_ranks(c, [entry for entry in planned if isinstance(entry, NewJob)]))
    return submission.carry_out(planned, lambda new: _insert(c, new, now, next(ranks)))


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


def _ranks(c: sqlite3.Connection, jobs: Sequence[NewJob]) -> list[float]:
    """The ranks of jobs, to be added in this order, with their keys' next
    ranks moved past them (fairness.ranks) and their pending counts raised."""
    given: dict[int, float] = {}
    for queue in dict.fromkeys(new.queue for new in jobs):
        mine = [n for n, new in enumerate(jobs) if new.queue == queue]
        keys = sorted({jobs[n].fairness_key for n in mine})
        # The clock and the keys' next ranks in one read: the clock's row first.
        rows = c.execute(_RANK_STATE, (queue, queue, orjson.dumps(keys).decode())).fetchall()
        clock = next((rank for key, rank in rows if key is None), 0.0)
        ranked, following = fairness.ranks(
            [(jobs[n].fairness_key, jobs[n].weight) for n in mine],
            {key: rank for key, rank in rows if key is not None},
            clock,
        )
        adding = Counter(jobs[n].fairness_key for n in mine)
        c.executemany(
            """INSERT INTO fair_keys VALUES (?, ?, ?, ?)
            ON CONFLICT (queue, key) DO UPDATE
            SET next_rank = excluded.next_rank, pending = pending + excluded.pending""",
            [(queue, key, rank, adding[key]) for key, rank in following.items()],
        )
        given.update(zip(mine, ranked, strict=True))
    return [given[n] for n in range(len(jobs))]


def _choose(
    c: sqlite3.Connection,
    queue: str,
    limit: int,
    now: float,
    policy: ClaimPolicy,
    buckets: dict[str, rate_limits.Bucket],
) -> list[_Ready]:
    """The jobs a claim of limit takes (fairness.choose over what it reads),
    in rounds while a round passes over a key that reached its cap or its
    rate: the next round reads past it."""
    running: dict[str, int] = {}
    if policy.max_per_key is not None:
        running = dict(c.execute(_RUNNING_KEYS, (queue,)).fetchall())
    aging: list[int] = []
    if policy.aging_interval > 0:
        aging = [p for (p,) in c.execute(_PRIORITIES, (queue,)) if p < policy.top_priority]
    rounds: fairness.Rounds[_Ready] = fairness.Rounds(
        limit=limit,
        now=now,
        policy=policy,
        running=running,
        allowance=rate_limits.allowances(buckets, now),
    )
    while rounds.wanted:
        rounds.offer(_candidates(c, queue, aging, rounds.wanted, now, rounds.passed))
    return rounds.chosen


def _candidates(
    c: sqlite3.Connection,
    queue: str,
    aging: list[int],
    limit: int,
    now: float,
    passed: frozenset[str],
) -> list[_Ready]:
    """What a claim of limit chooses from: the first due jobs in claim order
    without aging (every priority at once: jobs_fair is by priority first),
    the longest due of each priority in aging, those whose time has come and
    expired leases; in one statement."""
    per_read = fairness.candidates_per_read(limit)
    skip = orjson.dumps(sorted(passed)).decode()
    reads: list[tuple[str, tuple[object, ...]]] = [(_BY_RANK, (queue, skip, per_read))]
    reads += [(_BY_AGE, (queue, p, skip, per_read)) for p in aging]
    reads += [(_DUE, (queue, now, skip, per_read)), (_EXPIRED, (queue, now, skip, per_read))]
    sql = " UNION ALL ".join(read for read, _ in reads)
    values = tuple(value for _, each in reads for value in each)
    return [_Ready(*row) for row in c.execute(sql, values)]


def _buckets(c: sqlite3.Connection, queue: str) -> dict[str, rate_limits.Bucket]:
    return {
        key: rate_limits.Bucket(rate_limits.RateLimit(per_second, burst), tokens, at)
        for key, per_second, burst, tokens, at in c.execute(_BUCKETS, (queue,))
    }


def _take_tokens(
    c: sqlite3.Connection,
    queue: str,
    buckets: dict[str, rate_limits.Bucket],
    chosen: list[_Ready],
    now: float,
) -> None:
    """Take a token of each rate-limited key per job of it chosen."""
    taking = Counter(ready.fairness_key for ready in chosen if ready.fairness_key in buckets)
    c.executemany(
        "UPDATE rate_limits SET tokens = ?, at = ? WHERE queue = ? AND key = ?",
        [
            (rate_limits.taken(buckets[key], count, now).tokens, now, queue, key)
            for key, count in taking.items()
        ],
    )


def _pending(c: sqlite3.Connection, queue: str, key: str) -> bool:
    row = c.execute(
        "SELECT pending FROM fair_keys WHERE queue = ? AND key = ?", (queue, key)
    ).fetchone()
    return row is not None and row[0] > 0


def _insert(c: sqlite3.Connection, new: NewJob, now: float, rank: float) -> Job:
    job_id = random_id()
    payload = orjson.dumps(new.payload)
    cursor = c.execute(
        """INSERT INTO jobs (id, queue, payload, priority, state, max_attempts, attempt,
            failures, created_at, lease_owner, error, request_id, fingerprint, attempt_timeout,
            trace, fairness_key, rank, ready_at, run_at)
        VALUES (?, ?, ?, ?, 'available', ?, 0, 0, ?, '', '', ?, ?, ?, ?, ?, ?, ?, ?)""",
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
            new.fairness_key,
            rank,
            ready_at(new, now),
            new.run_at,
        ),
    )
    # The row as inserted, built here rather than read back (RETURNING): a
    # submission's largest cost on the file's thread. The payload goes through
    # JSON as a read would, so the job holds no object of the caller's.
    assert cursor.lastrowid is not None
    return added(
        new,
        job_id=job_id,
        seq=cursor.lastrowid,
        payload=orjson.loads(payload),
        now=now,
        rank=rank,
    )
