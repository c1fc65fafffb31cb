"""A JobStore in a PostgreSQL database, which many replicas share (asyncpg,
over a connection pool).

Every operation is one statement where it can be, so that the database, not
this process, decides races: a claim locks the jobs it takes (FOR UPDATE SKIP
LOCKED, so concurrent claims pass over each other's jobs instead of waiting),
and an outcome is written only by an UPDATE whose WHERE holds the fencing rule
(rules.holds). Times come from the caller (`now`), never the database's clock.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from queues.core import fairness, rate_limits, rules, submission
from queues.core.changes import ChangeHub, JobChange, Subscription
from queues.core.coalescing import Coalescing
from queues.core.fairness import NO_POLICY, ClaimPolicy
from queues.core.jobs import (
    FINAL_STATES,
    Claim,
    Job,
    JobState,
    NewJob,
    Page,
    QueueCounts,
    Submitted,
    counts_from_groups,
    ready_at,
)
from queues.core.postgres_database import DatabaseStore
from queues.errors import (
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from queues.ids import random_id
from queues.storage import CommitObserver

if TYPE_CHECKING:
    from queues.core.postgres_database import Connection

#: Where the database announces job changes (changes.py), as JSON [queue, id, state].
CHANNEL = "quoteflow_jobs"

# Shards of each count in job_counts (see its migration).
_COUNT_SHARDS = 16

#: Each entry migrates the schema one version up; open() applies those the
#: database has not seen, in order. Append; never edit a released entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            id text PRIMARY KEY,
            queue text NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            -- json, not jsonb: json keeps the text as written, so a payload
            -- reads back exactly (jsonb reorders keys, makes -0.0 0 and refuses
            -- a string holding U+0000); the store never looks inside it.
            payload json,
            priority integer NOT NULL,
            state text NOT NULL,
            max_attempts integer NOT NULL,
            attempt integer NOT NULL,
            failures integer NOT NULL,
            created_at double precision NOT NULL,
            run_at double precision,
            lease_owner text NOT NULL,
            lease_until double precision,
            result json,
            error text NOT NULL,
            finished_at double precision,
            request_id text NOT NULL,
            fingerprint text NOT NULL,
            attempt_timeout double precision,
            started_at double precision,
            review json
        )""",
        """CREATE UNIQUE INDEX jobs_request ON jobs (queue, request_id)
            WHERE request_id <> ''""",
        # The claim's two halves: ready jobs in claim order, and expired leases.
        """CREATE INDEX jobs_available ON jobs (queue, priority DESC, seq)
            WHERE state = 'available'""",
        "CREATE INDEX jobs_expiring ON jobs (queue, lease_until) WHERE state = 'running'",
        # list pages by seq; stats count a queue.
        "CREATE INDEX jobs_seq ON jobs (queue, seq)",
        """CREATE INDEX jobs_finished ON jobs (queue, finished_at)
            WHERE state IN ('completed', 'failed', 'cancelled', 'rejected')""",
        # next_due's backoff half (its lease half is jobs_expiring).
        """CREATE INDEX jobs_backoff ON jobs (queue, run_at)
            WHERE state = 'available' AND run_at IS NOT NULL""",
        # Every change of a job's state or attempt is announced in the writing
        # transaction, whichever replica writes: the listeners hear it at commit.
        f"""CREATE FUNCTION jobs_announce() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' OR NEW.state <> OLD.state OR NEW.attempt <> OLD.attempt THEN
                PERFORM pg_notify(
                    '{CHANNEL}', json_build_array(NEW.queue, NEW.id, NEW.state)::text);
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER jobs_announce AFTER INSERT OR UPDATE ON jobs
            FOR EACH ROW EXECUTE FUNCTION jobs_announce()""",
    ),
    # Counts kept by a trigger, so stats and the bound read a few rows, not every
    # job. Each connection's backend writes its own shard of a count, so writers
    # on different connections do not queue behind one hot row.
    (
        """CREATE TABLE job_counts (
            queue text NOT NULL,
            state text NOT NULL,
            priority integer NOT NULL,
            shard integer NOT NULL,
            count bigint NOT NULL,
            PRIMARY KEY (queue, state, priority, shard)
        )""",
        """INSERT INTO job_counts
            SELECT queue, state, priority, 0, count(*) FROM jobs GROUP BY queue, state, priority""",
        f"""CREATE FUNCTION jobs_count() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            my_shard integer := pg_backend_pid() % {_COUNT_SHARDS};
        BEGIN
            IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE' OR NEW.state <> OLD.state
                    OR NEW.priority <> OLD.priority) THEN
                INSERT INTO job_counts VALUES (OLD.queue, OLD.state, OLD.priority, my_shard, -1)
                ON CONFLICT (queue, state, priority, shard)
                DO UPDATE SET count = job_counts.count - 1;
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (NEW.state <> OLD.state
                    OR NEW.priority <> OLD.priority)) THEN
                INSERT INTO job_counts VALUES (NEW.queue, NEW.state, NEW.priority, my_shard, 1)
                ON CONFLICT (queue, state, priority, shard)
                DO UPDATE SET count = job_counts.count + 1;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER jobs_count AFTER INSERT OR UPDATE OR DELETE ON jobs
            FOR EACH ROW EXECUTE FUNCTION jobs_count()""",
        # stats' oldest waiting job and longest attempt, without a scan.
        """CREATE INDEX jobs_waiting_since ON jobs (queue, created_at)
            WHERE state = 'available'""",
        "CREATE INDEX jobs_running_since ON jobs (queue, started_at) WHERE state = 'running'",
    ),
    # The leases of periodic duties (lead()).
    (
        """CREATE TABLE leads (
            name text PRIMARY KEY, owner text NOT NULL, until double precision NOT NULL
        )""",
    ),
    # The trace each job was submitted in (NewJob.trace).
    ("ALTER TABLE jobs ADD COLUMN trace text NOT NULL DEFAULT ''",),
    # Fairness keys, aging and rate limits (fairness.py, rate_limits.py). Jobs
    # kept from before are ranked in submission order, and due since
    # submission; the claim's indexes hold the jobs due without a time (those
    # with one are read by jobs_backoff). AVAILABLE jobs per key are counted
    # by a trigger, sharded as job_counts is.
    (
        """ALTER TABLE jobs ADD COLUMN fairness_key text NOT NULL DEFAULT '',
            ADD COLUMN rank double precision NOT NULL DEFAULT 0,
            ADD COLUMN ready_at double precision NOT NULL DEFAULT 0""",
        "UPDATE jobs SET rank = seq, ready_at = created_at",
        """CREATE TABLE fair_keys (
            queue text NOT NULL, key text NOT NULL, next_rank double precision NOT NULL,
            PRIMARY KEY (queue, key)
        )""",
        "CREATE TABLE fair_clocks (queue text PRIMARY KEY, clock double precision NOT NULL)",
        """CREATE TABLE key_counts (
            queue text NOT NULL, key text NOT NULL, shard integer NOT NULL, count bigint NOT NULL,
            PRIMARY KEY (queue, key, shard)
        )""",
        """CREATE TABLE rate_limits (
            queue text NOT NULL, key text NOT NULL, per_second double precision NOT NULL,
            burst integer NOT NULL, tokens double precision NOT NULL,
            at double precision NOT NULL, PRIMARY KEY (queue, key)
        )""",
        """INSERT INTO fair_keys
            SELECT queue, fairness_key, max(rank) + 1 FROM jobs GROUP BY queue, fairness_key""",
        """INSERT INTO fair_clocks
            SELECT queue,
                coalesce(min(rank) FILTER (WHERE state = 'available'), max(rank) + 1)
            FROM jobs GROUP BY queue""",
        """INSERT INTO key_counts
            SELECT queue, fairness_key, 0, count(*) FROM jobs WHERE state = 'available'
            GROUP BY queue, fairness_key""",
        f"""CREATE FUNCTION jobs_count_keys() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            my_shard integer := pg_backend_pid() % {_COUNT_SHARDS};
        BEGIN
            IF TG_OP <> 'INSERT' AND OLD.state = 'available' AND (TG_OP = 'DELETE'
                    OR NEW.state <> 'available') THEN
                INSERT INTO key_counts VALUES (OLD.queue, OLD.fairness_key, my_shard, -1)
                ON CONFLICT (queue, key, shard) DO UPDATE SET count = key_counts.count - 1;
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.state = 'available' AND (TG_OP = 'INSERT'
                    OR OLD.state <> 'available') THEN
                INSERT INTO key_counts VALUES (NEW.queue, NEW.fairness_key, my_shard, 1)
                ON CONFLICT (queue, key, shard) DO UPDATE SET count = key_counts.count + 1;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER jobs_count_keys AFTER INSERT OR UPDATE OF state OR DELETE ON jobs
            FOR EACH ROW EXECUTE FUNCTION jobs_count_keys()""",
        "DROP INDEX jobs_available",
        """CREATE INDEX jobs_fair ON jobs (queue, priority, rank, seq)
            WHERE state = 'available' AND run_at IS NULL""",
        """CREATE INDEX jobs_aging ON jobs (queue, priority, ready_at)
            WHERE state = 'available' AND run_at IS NULL""",
        "CREATE INDEX jobs_running_keys ON jobs (queue, fairness_key) WHERE state = 'running'",
    ),
    # A claim reads the jobs whose time (a schedule, a backoff) has come as it
    # reads the others: per priority, in rank order and by when each became
    # due, not all together by run_at, which would hide a higher priority's or
    # an earlier turn's behind a crowd of earlier times. run_at is a key, so
    # that a scan checks it in the index, passing over the jobs whose time is
    # to come without reading them.
    (
        """CREATE INDEX jobs_fair_timed ON jobs (queue, priority, rank, seq, run_at)
            WHERE state = 'available' AND run_at IS NOT NULL""",
        """CREATE INDEX jobs_aging_timed ON jobs (queue, priority, ready_at, run_at)
            WHERE state = 'available' AND run_at IS NOT NULL""",
    ),
)

# Hashed with each queue's name, an advisory lock key for the bound, so only
# submits to one queue wait for one another.
_BOUND_LOCK_PREFIX = "quoteflow.jobs.bound:"

_COLUMNS = (
    "id, queue, seq, payload, priority, state, max_attempts, attempt, failures, created_at,"
    " run_at, lease_owner, lease_until, result, error, finished_at, request_id, fingerprint,"
    " attempt_timeout, started_at, review, trace, fairness_key, rank, ready_at"
)
_JOBS_COLUMNS = ", ".join(f"jobs.{column.strip()}" for column in _COLUMNS.split(","))

# Locks the rows of the keys ($1, $2: queue and key, each once) a batch
# ranks jobs of, making those of new keys, and reads their next ranks (a new
# key's is -Infinity: none yet) and their queues' clocks (rows with key NULL).
# A concurrent submission of one of them, even a new one, waits for this
# transaction, and then ranks after it. In (queue, key) order, so that two
# batches never wait for each other in a circle.
_LOCK_RANKS = """
    WITH locked AS (
        INSERT INTO fair_keys
        SELECT queue, key, '-Infinity' FROM unnest($1::text[], $2::text[]) AS batch(queue, key)
        ORDER BY queue, key
        ON CONFLICT (queue, key) DO UPDATE SET next_rank = fair_keys.next_rank
        RETURNING queue, key, next_rank
    )
    SELECT queue, key, next_rank FROM locked
    UNION ALL SELECT queue, NULL, clock FROM fair_clocks WHERE queue = ANY($1::text[])"""

# Adds a batch's jobs, and moves their keys' next ranks ($15, $16, $17:
# queue, key, next rank) past them in the same statement, a round trip fewer
# under the keys' locks. GREATEST, so that a rank is never given twice.
_INSERT = f"""
    WITH moved AS (
        UPDATE fair_keys SET next_rank = greatest(fair_keys.next_rank, moved.next_rank)
        FROM unnest($15::text[], $16::text[], $17::float8[]) AS moved(queue, key, next_rank)
        WHERE fair_keys.queue = moved.queue AND fair_keys.key = moved.key
    )
    INSERT INTO jobs (id, queue, payload, priority, state, max_attempts, attempt, failures,
                      created_at, lease_owner, error, request_id, fingerprint, attempt_timeout,
                      trace, fairness_key, rank, ready_at, run_at)
    SELECT id, queue, payload, priority, 'available', max_attempts, 0, 0,
           created_at, '', '', request_id, fingerprint, attempt_timeout, trace,
           fairness_key, rank, ready_at, run_at
    FROM unnest($1::text[], $2::text[], $3::json[], $4::int[], $5::int[], $6::text[],
                $7::text[], $8::float8[], $9::float8[], $10::text[], $11::text[],
                $12::float8[], $13::float8[], $14::float8[]) WITH ORDINALITY
         AS new(id, queue, payload, priority, max_attempts, request_id, fingerprint,
                attempt_timeout, created_at, trace, fairness_key, rank, ready_at, run_at, ord)
    -- seq is drawn in this order, so it rises in the batch's order.
    ORDER BY ord
    ON CONFLICT (queue, request_id) WHERE request_id <> '' DO NOTHING
    RETURNING {_COLUMNS}"""

# As _INSERT, for one job claimed at once: its key's next rank is $14.
_CLAIM_NEW = f"""
    WITH moved AS (
        UPDATE fair_keys SET next_rank = greatest(next_rank, $14) WHERE queue = $2 AND key = $12
    )
    INSERT INTO jobs (id, queue, payload, priority, state, max_attempts, attempt, failures,
                      created_at, lease_owner, lease_until, started_at, error, request_id,
                      fingerprint, attempt_timeout, trace, fairness_key, rank, ready_at)
    VALUES ($1, $2, $3, $4, 'running', $5, 1, 0, $6, $7, $8, $6, '', '', $9, $10, $11, $12,
            $13, $6)
    RETURNING {_COLUMNS}"""

_EXISTING = f"""
    SELECT {_JOBS_COLUMNS} FROM jobs
    JOIN unnest($1::text[], $2::text[]) AS seen(queue, request_id)
      ON jobs.queue = seen.queue AND jobs.request_id = seen.request_id
    -- Implies the predicate of the partial unique index on (queue, request_id).
    WHERE jobs.request_id <> ''"""

_LOCK_BOUNDS = f"""
    SELECT pg_advisory_xact_lock(hashtextextended('{_BOUND_LOCK_PREFIX}' || queue, 0))
    FROM (SELECT DISTINCT unnest($1::text[]) AS queue ORDER BY queue) AS queues"""

_UNFINISHED = """
    SELECT queue, sum(count) FROM job_counts
    WHERE queue = ANY($1::text[]) AND state IN ('available', 'running')
    GROUP BY queue"""

# What a claim chooses from (fairness.py): of the jobs due without a time,
# those whose time (a schedule, a backoff) has come, and expired leases
# (taken over), per priority that has some (job_counts), the first in rank
# order and, below the top priority ($4, NULL without aging), the longest due;
# each passing over the keys in $3, at $5 (now). The last two kinds are
# looked for only when one index entry says the queue has some, so that jobs
# whose time is still to come, and leases still held, cost a claim nothing.
# Nothing is locked: what is chosen from them is (_CLAIM), so that concurrent
# claims pass over each other's choices, not over everything either read.
_CANDIDATE = "seq, id, priority, rank, ready_at, fairness_key"
_UNTIMED = "state = 'available' AND run_at IS NULL"
_TIMED = "state = 'available' AND run_at IS NOT NULL AND run_at <= $5"
# A job whose time has come became due by then: the bound ends the scan by
# ready_at at the jobs whose time is to come (their ready_at is their time).
_TIMED_AGED = f"{_TIMED} AND ready_at <= $5"
_EXPIRED = "state = 'running' AND lease_until <= $5"


def _firsts(priorities: str, kind: str, *, aging: bool = False) -> str:
    """Per priority of priorities, the first $2 candidates of kind in rank
    order, or with aging, those below the top priority longest due."""
    return f"""
    SELECT first.* FROM {priorities} AS p, LATERAL (
        SELECT {_CANDIDATE}, state = 'running' AS taken_over FROM jobs
        WHERE queue = $1 AND jobs.priority = p.priority AND {kind}
          AND fairness_key <> ALL($3::text[]) {"AND p.priority < $4" if aging else ""}
        ORDER BY {"ready_at" if aging else "rank, seq"} LIMIT $2) AS first"""


_CANDIDATES = f"""
    WITH counted AS (
        SELECT state, priority FROM job_counts
        WHERE queue = $1 AND state IN ('available', 'running')
        GROUP BY state, priority HAVING sum(count) > 0
    ), available AS (
        SELECT priority FROM counted WHERE state = 'available'
    ), timed AS (
        SELECT priority FROM available
        WHERE EXISTS (SELECT FROM jobs WHERE queue = $1 AND {_TIMED})
    ), expired AS (
        SELECT priority FROM counted WHERE state = 'running'
          AND EXISTS (SELECT FROM jobs WHERE queue = $1 AND {_EXPIRED})
    )
    {_firsts("available", _UNTIMED)}
    UNION ALL {_firsts("available", _UNTIMED, aging=True)}
    UNION ALL {_firsts("timed", _TIMED)}
    UNION ALL {_firsts("timed", _TIMED_AGED, aging=True)}
    UNION ALL {_firsts("expired", _EXPIRED)}
    UNION ALL {_firsts("expired", _EXPIRED, aging=True)}"""
#: The most times a claim chooses again for what a concurrent claim took.
_CLAIM_ROUNDS = 3
# Hashed with the queue's name: held by a claim under a cap per key, so that
# claims on many replicas do not each see room under it at once.
_CLAIM_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('quoteflow.jobs.claim:' || $1, 0))"
_RUNNING_KEYS = """
    SELECT fairness_key, count(*) FROM jobs WHERE queue = $1 AND state = 'running'
    GROUP BY fairness_key"""
_BUCKETS = """
    SELECT key, per_second, burst, tokens, at FROM rate_limits WHERE queue = $1
    ORDER BY key FOR UPDATE"""
# Claims for $3, leased until $4 and started at $5 (now), the first $2 of the
# choices $1, in their order, that are still claimable and that no concurrent
# claim holds; and moves the clock of their queue ($6) to the highest rank
# they take.
_CLAIM = f"""
    WITH claimed AS (
        UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $3,
                        lease_until = $4, run_at = NULL, started_at = $5
        WHERE id IN (
            SELECT id FROM jobs WHERE id = ANY($1::text[]) AND (
                (state = 'available' AND (run_at IS NULL OR run_at <= $5))
                OR (state = 'running' AND lease_until <= $5))
            ORDER BY array_position($1::text[], id) LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING {_JOBS_COLUMNS}
    ), clock AS (
        INSERT INTO fair_clocks SELECT $6::text, max(rank) FROM claimed HAVING count(*) > 0
        ON CONFLICT (queue) DO UPDATE SET clock = greatest(fair_clocks.clock, excluded.clock)
    )
    SELECT * FROM claimed"""
_TAKE_TOKENS = """
    UPDATE rate_limits SET tokens = taken.tokens, at = $3
    FROM unnest($2::text[], $4::float8[]) AS taken(key, tokens)
    WHERE rate_limits.queue = $1 AND rate_limits.key = taken.key"""
# The limited keys out of tokens that have AVAILABLE jobs (next_due).
_STARVED_BUCKETS = """
    SELECT key, per_second, burst, tokens, at FROM rate_limits
    WHERE queue = $1 AND tokens < 1 AND EXISTS (
        SELECT 1 FROM key_counts
        WHERE key_counts.queue = $1 AND key_counts.key = rate_limits.key
        GROUP BY key_counts.key HAVING sum(count) > 0)"""
_SET_LIMIT = """
    INSERT INTO rate_limits VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (queue, key) DO UPDATE SET per_second = excluded.per_second,
        burst = excluded.burst, tokens = excluded.tokens, at = excluded.at"""
_LIFT_LIMIT = "DELETE FROM rate_limits WHERE queue = $1 AND key = $2"
_ANNOUNCE_QUEUE = (
    f"SELECT pg_notify('{CHANNEL}', json_build_array($1::text, '', 'available')::text)"
)

_EXTEND = """
    UPDATE jobs SET lease_until = $3
    FROM unnest($1::text[], $2::int[]) AS claim(id, token)
    WHERE jobs.id = claim.id AND jobs.state = 'running' AND jobs.attempt = claim.token
    RETURNING jobs.id, jobs.attempt"""

# The fenced writes: $1 the job, $2 the claim's token (rules.holds).
_FENCE = "WHERE id = $1 AND state = 'running' AND attempt = $2"
_UNLEASE = "lease_owner = '', lease_until = NULL"
# Every completion of a batch in one statement, each under its own fence.
_COMPLETE = f"""
    UPDATE jobs SET state = done.state, result = done.result, finished_at = done.finished_at,
                    {_UNLEASE}
    FROM unnest($1::text[], $2::int[], $3::text[], $4::json[], $5::float8[])
         AS done(id, token, state, result, finished_at)
    WHERE jobs.id = done.id AND jobs.state = 'running' AND jobs.attempt = done.token
    RETURNING {_JOBS_COLUMNS}"""
# A checkpoint changes neither state nor attempt, which the trigger announces
# on: it announces itself, at commit, as the trigger would.
_UPDATE = f"""
    WITH updated AS (UPDATE jobs SET payload = $3 {_FENCE} RETURNING {_COLUMNS})
    SELECT *, pg_notify('{CHANNEL}', json_build_array(queue, id, state)::text) FROM updated"""
_RELEASE = f"""
    UPDATE jobs SET state = 'available', run_at = NULL, {_UNLEASE}
    {_FENCE} RETURNING {_COLUMNS}"""
_RETRY = f"""
    UPDATE jobs SET state = 'available', failures = failures + 1, error = $3, run_at = $4,
                    {_UNLEASE}
    {_FENCE} RETURNING {_COLUMNS}"""
_FAIL = f"""
    UPDATE jobs SET state = 'failed', failures = failures + 1, error = $3, finished_at = $4,
                    {_UNLEASE}
    {_FENCE} RETURNING {_COLUMNS}"""

# The transitions: $1 the job, $2 the states it may leave (rules.TRANSITIONS).
_FROM = "WHERE id = $1 AND state = ANY($2::text[])"
_CANCEL = f"""
    UPDATE jobs SET state = 'cancelled', finished_at = $3, {_UNLEASE}
    {_FROM} RETURNING {_COLUMNS}"""
_REDRIVE = f"""
    UPDATE jobs SET state = 'available', failures = 0, run_at = NULL, finished_at = NULL
    {_FROM} RETURNING {_COLUMNS}"""
_DECIDE = f"""
    UPDATE jobs SET state = $3, finished_at = $4, review = $5
    {_FROM} RETURNING {_COLUMNS}"""

_GET = f"SELECT {_COLUMNS} FROM jobs WHERE id = $1"
_STATE = "SELECT state FROM jobs WHERE id = $1"
_LIST = f"""
    SELECT {_COLUMNS} FROM jobs
    WHERE queue = $1 AND seq > $2 AND ($3::text[] IS NULL OR state = ANY($3::text[]))
    ORDER BY seq LIMIT $4"""
# Each half reads one entry of its partial index (see _STATS on min()).
_NEXT_DUE = """
    SELECT least(
        (SELECT run_at FROM jobs
            WHERE queue = $1 AND state = 'available' AND run_at IS NOT NULL
            ORDER BY run_at LIMIT 1),
        (SELECT lease_until FROM jobs WHERE queue = $1 AND state = 'running'
            ORDER BY lease_until LIMIT 1))"""
# Answers the owner when the lease was taken or renewed (lead()).
_LEAD = """
    INSERT INTO leads VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
    WHERE leads.until <= $4 OR leads.owner = excluded.owner
    RETURNING owner"""
_STATS = f"""
    SELECT state, priority, sum(count)::bigint,
        -- ORDER BY ... LIMIT 1 reads one entry of a partial index; min()
        -- may read every one (the planner does not always rewrite it).
        (SELECT created_at FROM jobs WHERE queue = $1 AND state = 'available'
            ORDER BY created_at LIMIT 1),
        (SELECT started_at FROM jobs WHERE queue = $1 AND state = 'running'
            ORDER BY started_at LIMIT 1),
        NULL AS key
    FROM job_counts WHERE queue = $1
    GROUP BY state, priority HAVING sum(count) <> 0
    -- The busiest keys, in the same round trip: rows of their own, state NULL.
    UNION ALL (
        SELECT NULL, NULL, sum(count)::bigint, NULL, NULL, key FROM key_counts WHERE queue = $1
        GROUP BY key HAVING sum(count) > 0
        ORDER BY 3 DESC, key LIMIT {fairness.BUSIEST_KEYS})"""
_SWEEP = """
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE queue = $1 AND state = ANY($2::text[]) AND finished_at < $3
        ORDER BY seq LIMIT $4
        FOR UPDATE SKIP LOCKED
    )"""

# The keys whose next rank the clock has reached (fairness.forgettable): the
# jobs keep their ranks, so whether a key has any pending does not matter.
# Those a submission is ranking are passed over. And the per-key counts that
# have come to nothing: a trigger's upsert makes a row again.
_FORGET_KEYS = """
    DELETE FROM fair_keys WHERE (queue, key) IN (
        SELECT fair_keys.queue, key FROM fair_keys JOIN fair_clocks USING (queue)
        WHERE queue = $1 AND next_rank <= clock
        LIMIT $2 FOR UPDATE OF fair_keys SKIP LOCKED
    )"""
_FORGET_COUNTS = """
    DELETE FROM key_counts WHERE (queue, key, shard) IN (
        SELECT queue, key, shard FROM key_counts WHERE queue = $1 AND count = 0
        LIMIT $2 FOR UPDATE SKIP LOCKED
    )"""

_FINAL = sorted(state.value for state in FINAL_STATES)


class PostgresJobStore(DatabaseStore):
    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        commits: CommitObserver | None = None,
    ) -> None:
        """commits: told of each group commit (submissions, completions): its
        seconds and size."""
        super().__init__(
            url,
            schema="jobs",
            migrations=MIGRATIONS,
            channel=CHANNEL,
            heard=self._heard,
            min_connections=min_connections,
            max_connections=max_connections,
        )
        self._hub: ChangeHub[JobChange] = ChangeHub()
        self._submissions = Coalescing(self._submit_batch, observe=commits)
        self._completions = Coalescing(self._complete_batch, observe=commits)

    async def submit(
        self, jobs: Sequence[NewJob], *, now: float, max_unfinished: int | None = None
    ) -> list[Submitted]:
        if not jobs:
            return []
        # Group commit: the submissions made while a transaction is written go
        # together in the next, which takes the bound's lock once and pays one
        # fsync for all of them.
        return await self._submissions.call(_Submission(list(jobs), now, max_unfinished))

    async def _submit_batch(self, batch: list[_Submission]) -> list[list[Submitted] | Exception]:
        if len(batch) > 1 and len({pending.max_unfinished for pending in batch}) == 1:
            try:
                return list(await self._submit_together(batch))
            except (QueueFullError, RequestConflictError):
                pass  # one of them: each alone, below, finds out which
        # In the order they came, so the bound admits the first ones first.
        answers: list[list[Submitted] | Exception] = []
        for pending in batch:
            try:
                [answer] = await self._submit_together([pending])
            except Exception as error:
                answers.append(error)
            else:
                answers.append(answer)
        return answers

    async def _submit_together(self, batch: list[_Submission]) -> list[list[Submitted]]:
        """The batch's submissions in one transaction, all or none."""
        jobs = [job for pending in batch for job in pending.jobs]
        plan = _Plan(jobs, [pending.now for pending in batch for _ in pending.jobs])
        max_unfinished = batch[0].max_unfinished
        async with self._database.connection("write") as connection, connection.transaction():
            if max_unfinished is not None and plan.fresh:
                await connection.execute(_LOCK_BOUNDS, [new.queue for new in plan.fresh])
            ranks, moves = await _ranks(connection, plan.fresh)
            rows = await connection.fetch(
                _INSERT, *plan.columns(ranks), moves.queues, moves.keys, moves.next_ranks
            )
            made = {row["id"]: _job(row) for row in rows}
            # A fresh job not inserted has a request_id its queue has seen.
            existing = await _existing(connection, plan.seen(made))
            if max_unfinished is not None and made:
                await _admit(connection, [job.queue for job in made.values()], max_unfinished)
        answers = plan.answer(made, existing)
        split = []
        for pending in batch:
            split.append(answers[: len(pending.jobs)])
            answers = answers[len(pending.jobs) :]
        return split

    async def claim_new(
        self, job: NewJob, *, owner: str, lease: float, now: float, max_unfinished: int | None
    ) -> Claim:
        async with self._database.connection("write") as connection, connection.transaction():
            if max_unfinished is not None:
                await connection.execute(_LOCK_BOUNDS, [job.queue])
            [rank], moves = await _ranks(connection, [job])
            [next_rank] = moves.next_ranks
            row = await connection.fetchrow(
                _CLAIM_NEW,
                random_id(),
                job.queue,
                job.payload,
                job.priority,
                job.max_attempts,
                now,
                owner,
                now + lease,
                job.fingerprint,
                job.attempt_timeout,
                job.trace,
                job.fairness_key,
                rank,
                next_rank,
            )
            if max_unfinished is not None:
                await _admit(connection, [job.queue], max_unfinished)
        assert row is not None  # an INSERT ... RETURNING answers its row
        claimed = _job(row)
        return Claim(claimed, claimed.attempt)

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
        async with self._database.connection("write") as connection, connection.transaction():
            running: dict[str, int] = {}
            if policy.max_per_key is not None:
                await connection.execute(_CLAIM_LOCK, queue)
                running = {key: n for key, n in await connection.fetch(_RUNNING_KEYS, queue)}
            buckets = _buckets(await connection.fetch(_BUCKETS, queue))
            allowance = rate_limits.allowances(buckets, now)
            claimed: list[Job] = []
            taken_over: set[str] = set()
            passed_ids: set[str] = set()
            for _ in range(_CLAIM_ROUNDS):
                want = limit - len(claimed)
                # More choices than wanted, best first: those a concurrent
                # claim holds are passed over for the next.
                per_read = fairness.candidates_per_read(want)
                picks = await _choose(
                    connection, queue, per_read, now, policy, running, allowance, passed_ids
                )
                if not picks:
                    break
                ids = [pick["id"] for pick in picks]
                rows = await connection.fetch(_CLAIM, ids, want, owner, now + lease, now, queue)
                for job in map(_job, rows):
                    claimed.append(job)
                    running[job.fairness_key] = running.get(job.fairness_key, 0) + 1
                    if job.fairness_key in allowance:
                        allowance[job.fairness_key] -= 1
                taken_over |= {pick["id"] for pick in picks if pick["taken_over"]}
                # Chosen again, from what is left, only if too few were free.
                passed_ids |= set(ids)
                if len(rows) == want or len(picks) < per_read:
                    break
            taking = Counter(job.fairness_key for job in claimed)
            limited = [key for key in taking if key in buckets]
            if limited:
                tokens = [
                    rate_limits.taken(buckets[key], taking[key], now).tokens for key in limited
                ]
                await connection.execute(_TAKE_TOKENS, queue, limited, now, tokens)
        # UPDATE ... RETURNING answers in no particular order.
        claimed.sort(key=lambda job: fairness.claim_order(job, now, policy))
        return [Claim(job, job.attempt, job.id in taken_over) for job in claimed]

    async def extend(self, claims: Sequence[Claim], *, lease: float, now: float) -> list[bool]:
        if not claims:
            return []
        async with self._database.connection("write") as connection:
            rows = await connection.fetch(
                _EXTEND, [c.id for c in claims], [c.token for c in claims], now + lease
            )
        held = {(row["id"], row["attempt"]) for row in rows}
        return [(claim.id, claim.token) in held for claim in claims]

    async def complete(self, claim: Claim, result: Any, *, hold: bool, now: float) -> Job:
        # Group commit, as submit's: the completions of a burst of attempts
        # are one statement and one fsync.
        return await self._completions.call(_Completion(claim, result, hold, now))

    async def _complete_batch(self, batch: list[_Completion]) -> list[Job | Exception]:
        async with self._database.connection("write") as connection:
            rows = await connection.fetch(
                _COMPLETE,
                [done.claim.id for done in batch],
                [done.claim.token for done in batch],
                [(JobState.HELD if done.hold else JobState.COMPLETED).value for done in batch],
                [done.result for done in batch],
                [None if done.hold else done.now for done in batch],
            )
        written = {row["id"]: _job(row) for row in rows}
        return [
            written.get(done.claim.id) or LostClaimError(done.claim.id, done.claim.token)
            for done in batch
        ]

    async def update(self, claim: Claim, payload: Any, *, now: float) -> Job:
        return await self._fenced(claim, _UPDATE, payload)

    async def release(self, claim: Claim, *, now: float) -> Job:
        return await self._fenced(claim, _RELEASE)

    async def retry(self, claim: Claim, error: str, *, run_at: float, now: float) -> Job:
        return await self._fenced(claim, _RETRY, error, run_at)

    async def fail(self, claim: Claim, error: str, *, now: float) -> Job:
        return await self._fenced(claim, _FAIL, error, now)

    async def cancel(self, job_id: str, *, now: float) -> Job:
        return await self._transition(job_id, "cancel", _CANCEL, now)

    async def redrive(self, job_id: str, *, now: float) -> Job:
        return await self._transition(job_id, "redrive", _REDRIVE)

    async def decide(self, job_id: str, *, approve: bool, review: Any, now: float) -> Job:
        operation = "approve" if approve else "reject"
        state = rules.TRANSITIONS[operation][1]
        return await self._transition(job_id, operation, _DECIDE, state.value, now, review)

    async def get(self, job_id: str) -> Job:
        async with self._database.connection("read") as connection:
            row = await connection.fetchrow(_GET, job_id)
        if row is None:
            raise NotFoundError("job", job_id)
        return _job(row)

    async def list(
        self, queue: str, *, states: frozenset[JobState] | None, after: int, limit: int
    ) -> Page:
        wanted = None if states is None else [state.value for state in states]
        async with self._database.connection("read") as connection:
            # One more than the page tells whether another follows.
            rows = await connection.fetch(_LIST, queue, after, wanted, limit + 1)
        page = [_job(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(page, page[-1].seq if more and page else None)

    async def stats(self, queue: str) -> QueueCounts:
        async with self._database.connection("read") as connection:
            rows = await connection.fetch(_STATS, queue)
        return counts_from_groups(
            [tuple(row)[:5] for row in rows if row["state"] is not None],
            fairness.busiest({row["key"]: row[2] for row in rows if row["state"] is None}),
        )

    def subscribe(self, queue: str) -> contextlib.AbstractContextManager[Subscription[JobChange]]:
        return self._hub.subscribe(queue)

    async def next_due(self, queue: str) -> float | None:
        async with self._database.connection("read") as connection:
            when: float | None = await connection.fetchval(_NEXT_DUE, queue)
            starved = _buckets(await connection.fetch(_STARVED_BUCKETS, queue))
        # A limited key with work waiting wakes a worker when its token is due.
        tokens = [rate_limits.next_token(bucket, bucket.at) for bucket in starved.values()]
        return min([*tokens, *([] if when is None else [when])], default=None)

    async def set_rate_limit(
        self, queue: str, key: str, limit: rate_limits.RateLimit | None, *, now: float
    ) -> None:
        async with self._database.connection("write") as connection, connection.transaction():
            if limit is None:
                await connection.execute(_LIFT_LIMIT, queue, key)
            else:
                held = _buckets(await connection.fetch(_BUCKETS, queue)).get(key)
                bucket = rate_limits.fresh(limit, held, now)
                await connection.execute(
                    _SET_LIMIT, queue, key, limit.per_second, limit.burst, bucket.tokens, now
                )
            await connection.execute(_ANNOUNCE_QUEUE, queue)

    async def lead(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        async with self._database.connection("write") as connection:
            taken = await connection.fetchval(_LEAD, name, owner, now + ttl, now)
        return taken is not None

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        async with self._database.connection("write") as connection:
            status = await connection.execute(_SWEEP, queue, _FINAL, finished_before, limit)
            await connection.execute(_FORGET_KEYS, queue, limit)
            await connection.execute(_FORGET_COUNTS, queue, limit)
        # The status is "DELETE <count>".
        return int(status.rpartition(" ")[2])

    async def _fenced(self, claim: Claim, statement: str, *values: Any) -> Job:
        async with self._database.connection("write") as connection:
            row = await connection.fetchrow(statement, claim.id, claim.token, *values)
        if row is None:
            raise LostClaimError(claim.id, claim.token)
        return _job(row)

    async def _transition(self, job_id: str, operation: str, statement: str, *values: Any) -> Job:
        allowed = [state.value for state in rules.TRANSITIONS[operation][0]]
        async with self._database.connection("write") as connection:
            row = await connection.fetchrow(statement, job_id, allowed, *values)
            if row is not None:
                return _job(row)
            # Only a refusal pays for a second statement, to say why.
            state = await connection.fetchval(_STATE, job_id)
        if state is None:
            raise NotFoundError("job", job_id)
        raise InvalidStateError("job", job_id, state, operation)

    def _heard(self, payload: str) -> None:
        queue, job_id, state = orjson.loads(payload)
        self._hub.publish(JobChange(queue, job_id, JobState(state)))


@dataclass(frozen=True, slots=True)
class _Completion:
    """One complete() call, waiting for the statement that writes it."""

    claim: Claim
    result: Any
    hold: bool
    now: float


@dataclass(frozen=True, slots=True)
class _Submission:
    """One submit() call, waiting for the transaction that writes it."""

    jobs: list[NewJob]
    now: float
    max_unfinished: int | None


class _Plan:
    """What a batch makes: its fresh jobs, each with the id it is inserted
    under, and its repeats of an earlier job's request_id, which make none."""

    def __init__(self, jobs: Sequence[NewJob], nows: Sequence[float]) -> None:
        self.jobs = jobs
        self.fresh: list[NewJob] = []
        #: When each fresh job was submitted.
        self.nows: list[float] = []
        self.ids: list[str] = []
        #: Per job of the batch: the index in fresh of the job it is or repeats.
        self.slots: list[int] = []
        # The batch's own repeats only: the INSERT's conflicts find the store's.
        for entry in submission.plan(jobs, lambda _: None):
            if isinstance(entry, int):
                self.slots.append(self.slots[entry])
                continue
            assert isinstance(entry, NewJob)
            self.slots.append(len(self.fresh))
            self.fresh.append(entry)
            self.nows.append(nows[len(self.slots) - 1])
            self.ids.append(random_id())

    def columns(self, ranks: list[float]) -> tuple[list[Any], ...]:
        fresh = self.fresh
        return (
            self.ids,
            [new.queue for new in fresh],
            [new.payload for new in fresh],
            [new.priority for new in fresh],
            [new.max_attempts for new in fresh],
            [new.request_id for new in fresh],
            [new.fingerprint for new in fresh],
            [new.attempt_timeout for new in fresh],
            self.nows,
            [new.trace for new in fresh],
            [new.fairness_key for new in fresh],
            ranks,
            [ready_at(new, now) for new, now in zip(fresh, self.nows, strict=True)],
            [new.run_at for new in fresh],
        )

    def seen(self, made: dict[str, Job]) -> list[NewJob]:
        return [new for new, job_id in zip(self.fresh, self.ids, strict=True) if job_id not in made]

    def answer(self, made: dict[str, Job], existing: dict[tuple[str, str], Job]) -> list[Submitted]:
        submitted = []
        repeated: set[int] = set()
        for new, slot in zip(self.jobs, self.slots, strict=True):
            job = made.get(self.ids[slot])
            if job is None:
                submitted.append(Submitted(existing[(new.queue, new.request_id)], created=False))
            else:
                submitted.append(Submitted(job, created=slot not in repeated))
            repeated.add(slot)
        return submitted


async def _existing(connection: Connection, seen: Sequence[NewJob]) -> dict[tuple[str, str], Job]:
    """The jobs seen's request ids made before, by (queue, request_id). Raises
    RequestConflictError for one made by another request."""
    if not seen:
        return {}
    rows = await connection.fetch(
        _EXISTING, [new.queue for new in seen], [new.request_id for new in seen]
    )
    existing = {(row["queue"], row["request_id"]): _job(row) for row in rows}
    for new in seen:
        submission.same_request(existing[(new.queue, new.request_id)].fingerprint, new)
    return existing


async def _admit(
    connection: Connection,
    queues: Sequence[str],
    max_unfinished: int,
) -> None:
    """Raise QueueFullError if a queue given jobs now holds more unfinished jobs
    than max_unfinished; the caller's transaction then adds none."""
    for _, unfinished in await connection.fetch(_UNFINISHED, sorted(set(queues))):
        if unfinished > max_unfinished:
            raise QueueFullError(max_unfinished, 0.0)


async def _ranks(connection: Connection, jobs: Sequence[NewJob]) -> tuple[list[float], _Moves]:
    """The ranks of jobs, to be added in this order, and their keys' next
    ranks after them (fairness.ranks), for the statement that adds them to
    move. Their keys' rows stay locked until the caller's transaction ends, so
    concurrent submissions of one key are ranked one after another."""
    moves = _Moves([], [], [])
    if not jobs:
        return [], moves
    held = sorted({(new.queue, new.fairness_key) for new in jobs})
    rows = await connection.fetch(
        _LOCK_RANKS, [queue for queue, _ in held], [key for _, key in held]
    )
    clocks: dict[str, float] = {}
    next_ranks: dict[str, dict[str, float]] = {}
    for queue, key, rank in rows:
        if key is None:
            clocks[queue] = rank
        elif rank > -math.inf:
            next_ranks.setdefault(queue, {})[key] = rank
    given: dict[int, float] = {}
    for queue in dict.fromkeys(new.queue for new in jobs):
        mine = [n for n, new in enumerate(jobs) if new.queue == queue]
        ranked, following = fairness.ranks(
            [(jobs[n].fairness_key, jobs[n].weight) for n in mine],
            next_ranks.get(queue, {}),
            clocks.get(queue, 0.0),
        )
        given.update(zip(mine, ranked, strict=True))
        for key, rank in following.items():
            moves.queues.append(queue)
            moves.keys.append(key)
            moves.next_ranks.append(rank)
    return [given[n] for n in range(len(jobs))], moves


@dataclass(frozen=True, slots=True)
class _Moves:
    """The next ranks a submission moves its keys to, as _INSERT's columns."""

    queues: list[str]
    keys: list[str]
    next_ranks: list[float]


async def _choose(
    connection: Connection,
    queue: str,
    limit: int,
    now: float,
    policy: ClaimPolicy,
    running: dict[str, int],
    allowance: dict[str, int],
    passed_ids: set[str],
) -> list[asyncpg.Record]:
    """The jobs a claim of limit chooses (fairness.choose over what it reads),
    none of passed_ids, given each key's running jobs and allowance; in rounds
    while a round passes over a key that reached its cap or its rate, the
    next reading past it."""
    top = policy.top_priority if policy.aging_interval > 0 else None
    rounds: fairness.Rounds[_Ready] = fairness.Rounds(
        limit=limit, now=now, policy=policy, running=running, allowance=allowance
    )
    while rounds.wanted:
        per_read = fairness.candidates_per_read(rounds.wanted + len(passed_ids))
        rows = await connection.fetch(_CANDIDATES, queue, per_read, sorted(rounds.passed), top, now)
        rounds.offer(_Ready(row) for row in rows if row["id"] not in passed_ids)
    return [ready.row for ready in rounds.chosen]


class _Ready:
    """A candidate row as fairness.choose reads it."""

    __slots__ = ("fairness_key", "id", "priority", "rank", "ready_at", "row", "seq")

    def __init__(self, row: asyncpg.Record) -> None:
        self.row = row
        self.id: str = row["id"]
        self.seq: int = row["seq"]
        self.priority: int = row["priority"]
        self.rank: float = row["rank"]
        self.ready_at: float = row["ready_at"]
        self.fairness_key: str = row["fairness_key"]


def _buckets(rows: Sequence[asyncpg.Record]) -> dict[str, rate_limits.Bucket]:
    return {
        row["key"]: rate_limits.Bucket(
            rate_limits.RateLimit(row["per_second"], row["burst"]), row["tokens"], row["at"]
        )
        for row in rows
    }


def _job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        seq=row["seq"],
        payload=row["payload"],
        priority=row["priority"],
        state=JobState(row["state"]),
        max_attempts=row["max_attempts"],
        attempt=row["attempt"],
        failures=row["failures"],
        created_at=row["created_at"],
        run_at=row["run_at"],
        lease_owner=row["lease_owner"],
        lease_until=row["lease_until"],
        result=row["result"],
        error=row["error"],
        finished_at=row["finished_at"],
        request_id=row["request_id"],
        fingerprint=row["fingerprint"],
        attempt_timeout=row["attempt_timeout"],
        started_at=row["started_at"],
        review=row["review"],
        trace=row["trace"],
        fairness_key=row["fairness_key"],
        rank=row["rank"],
        ready_at=row["ready_at"],
    )
