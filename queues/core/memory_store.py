"""A JobStore in this process's memory: the contract's reference in tests, and
the quote service's `--store memory`. Payloads and results are copied through
JSON, as a real store keeps them.

Every operation goes through indexes kept per queue, so that it costs O(log n)
per job it touches, amortised, however many jobs the queue holds. Each change
of a job gives it a new version and files that version in the indexes its state
calls for; an entry whose version is no longer its job's is stale and dropped
when met (heaps do not delete from the middle), and a heap is compacted once
its stale entries outnumber the queue's jobs twice over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

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
)
from queues.errors import (
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
)
from queues.ids import random_id

#: (key, seq, version, job id): least key first, then submission order. The
#: version, unique across the store, keeps two entries of one job apart.
_Entry = tuple[float, int, int, str]

#: Below this many entries a heap is never compacted: too small to matter.
_COMPACT_FLOOR = 64


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


class _Heap:
    """A heap of entries that hold while their job is still at their version."""

    def __init__(self, versions: dict[str, int]) -> None:
        self._entries: list[_Entry] = []
        self.versions = versions

    def push(self, key: float, job: Job, version: int) -> None:
        heapq.heappush(self._entries, (key, job.seq, version, job.id))

    def top(self) -> _Entry | None:
        """The least entry that holds, dropping the stale ones above it."""
        entries = self._entries
        while entries and not self._holds(entries[0]):
            heapq.heappop(entries)
        return entries[0] if entries else None

    def pop(self) -> _Entry | None:
        entry = self.top()
        if entry is not None:
            heapq.heappop(self._entries)
        return entry

    def restore(self, entries: list[_Entry]) -> None:
        """Put back entries popped from this heap."""
        for entry in entries:
            heapq.heappush(self._entries, entry)

    def __len__(self) -> int:
        return len(self._entries)

    def compact(self) -> None:
        """Drop every stale entry."""
        self._entries = [entry for entry in self._entries if self._holds(entry)]
        heapq.heapify(self._entries)

    def _holds(self, entry: _Entry) -> bool:
        return self.versions.get(entry[3]) == entry[2]


class _SeqSet:
    """A set of seqs read in ascending order: a tree of 64-bit words, 64 ways
    at each level, so adding, discarding and finding the next seq above one
    each cost O(log n) (six levels hold seqs up to 2**36)."""

    _LEVELS = 6

    def __init__(self) -> None:
        # _words[level][index]: bit b marks member (index << 6 | b) of the level
        # below (of the set itself, at level 0) as present.
        self._words: list[dict[int, int]] = [{} for _ in range(self._LEVELS)]

    def add(self, seq: int) -> None:
        for level in self._words:
            index, bit = seq >> 6, seq & 63
            word = level.get(index, 0)
            level[index] = word | (1 << bit)
            if word:
                return  # the levels above already mark this word
            seq = index

    def discard(self, seq: int) -> None:
        for level in self._words:
            index, bit = seq >> 6, seq & 63
            word = level.get(index, 0) & ~(1 << bit)
            if word:
                level[index] = word
                return
            level.pop(index, None)
            seq = index

    def after(self, seq: int) -> Iterator[int]:
        """The members above seq, ascending."""
        found = self._next(seq + 1)
        while found is not None:
            yield found
            found = self._next(found + 1)

    def _next(self, least: int) -> int | None:
        """The least member at or above least."""
        for depth, level in enumerate(self._words):
            index, bit = least >> 6, least & 63
            word = level.get(index, 0) >> bit << bit
            if word:
                found = index << 6 | _lowest_bit(word)
                for below in reversed(self._words[:depth]):
                    found = found << 6 | _lowest_bit(below[found])
                return found
            least = index + 1
        return None


def _lowest_bit(word: int) -> int:
    return (word & -word).bit_length() - 1


class _Queue:
    """One queue's indexes of the versions of its jobs."""

    def __init__(self, versions: dict[str, int]) -> None:
        self.versions = versions
        self.size = 0
        self.counts: Counter[tuple[JobState, int]] = Counter()
        #: AVAILABLE and RUNNING jobs per fairness key.
        self.pending_keys: Counter[str] = Counter()
        self.running_keys: Counter[str] = Counter()
        self.seqs = {state: _SeqSet() for state in JobState}
        #: Per priority, by rank and by ready_at (fairness.py): AVAILABLE jobs
        #: due, and RUNNING ones whose lease a claim saw expire.
        self.by_rank: dict[int, _Heap] = {}
        self.by_age: dict[int, _Heap] = {}
        #: The highest rank claimed, and each key's next rank (fairness.ranks).
        self.clock = 0.0
        self.next_ranks: dict[str, float] = {}
        #: The token bucket of each rate-limited key.
        self.buckets: dict[str, rate_limits.Bucket] = {}
        #: By the time a job becomes claimable (a backoff's run_at, a lease's
        #: end), until a claim moves it into ready.
        self.waiting = _Heap(versions)
        #: The same times, kept for next_due after a claim moved the job.
        self.timers = _Heap(versions)
        #: AVAILABLE jobs by created_at, RUNNING jobs by started_at (for stats).
        self.created = _Heap(versions)
        self.started = _Heap(versions)
        #: Final jobs by finished_at, until a sweep moves them into expired,
        #: which is by seq (key 0), the order the sweep removes them in.
        self.finished = _Heap(versions)
        self.expired = _Heap(versions)

    def heaps(self) -> tuple[_Heap, ...]:
        return (
            *self.by_rank.values(),
            *self.by_age.values(),
            self.waiting,
            self.timers,
            self.created,
            self.started,
            self.finished,
            self.expired,
        )

    def file(self, job: Job, version: int) -> None:
        """Enter this version of job in the indexes its state calls for."""
        if job.state is JobState.AVAILABLE:
            self.created.push(job.created_at, job, version)
        if job.state is JobState.RUNNING and job.started_at:
            self.started.push(job.started_at, job, version)
        due = _due(job)
        if due is not None:
            self.waiting.push(due, job, version)
            self.timers.push(due, job, version)
        elif job.state is JobState.AVAILABLE:
            self.make_ready(job, version)
        if job.state.is_final and job.finished_at is not None:
            self.finished.push(job.finished_at, job, version)

    def make_ready(self, job: Job, version: int) -> None:
        """File this version of job as one a claim may take."""
        heaps = self.by_rank.get(job.priority)
        if heaps is None:
            self.by_rank[job.priority] = _Heap(self.versions)
            self.by_age[job.priority] = _Heap(self.versions)
        self.by_rank[job.priority].push(job.rank, job, version)
        self.by_age[job.priority].push(job.ready_at, job, version)

    def count(self, job: Job, change: int) -> None:
        """Count job in (change 1) or out of (change -1) its state."""
        key = (job.state, job.priority)
        self.counts[key] += change
        if not self.counts[key]:
            del self.counts[key]
        by_key = {JobState.AVAILABLE: self.pending_keys, JobState.RUNNING: self.running_keys}
        counter = by_key.get(job.state)
        if counter is not None:
            counter[job.fairness_key] += change
            if not counter[job.fairness_key]:
                del counter[job.fairness_key]
        if change > 0:
            self.seqs[job.state].add(job.seq)
        else:
            self.seqs[job.state].discard(job.seq)

    def unfinished(self) -> int:
        return sum(n for (state, _), n in self.counts.items() if state.is_unfinished)

    def compact(self) -> None:
        """Compact a heap once its stale entries outnumber the most that can
        hold (one per job of the queue) twice over, so each costs O(1) amortised."""
        most = max(3 * self.size, _COMPACT_FLOOR)
        for heap in self.heaps():
            if len(heap) > most:
                heap.compact()


def _due(job: Job) -> float | None:
    """When time alone makes job claimable, if it will: a backoff's end, or
    its lease's."""
    if job.state is JobState.AVAILABLE:
        return job.run_at
    if job.state is JobState.RUNNING:
        return job.lease_until
    return None


def _top_key(heap: _Heap) -> float | None:
    entry = heap.top()
    return None if entry is None else entry[0]


class MemoryJobStore:
    name = "memory job store"

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        #: job id → the version of it the indexes hold valid
        self._versions: dict[str, int] = {}
        self._version = itertools.count(1)
        self._by_seq: dict[int, str] = {}
        self._queues: dict[str, _Queue] = {}
        # (queue, request_id) → job id
        self._requests: dict[tuple[str, str], str] = {}
        self._seq = 0
        # name → (holder, until) of each lease (lead()).
        self._leads: dict[str, tuple[str, float]] = {}
        self._hub: ChangeHub[JobChange] = ChangeHub()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def submit(
        self, jobs: Sequence[NewJob], *, now: float, max_unfinished: int | None = None
    ) -> list[Submitted]:
        planned = submission.plan(jobs, self._seen)
        if max_unfinished is not None:
            for queue, count in submission.adding(planned).items():
                if self._queue(queue).unfinished() + count > max_unfinished:
                    raise QueueFullError(max_unfinished, 0.0)
        return submission.carry_out(planned, lambda new: self._add(new, now))

    def _seen(self, new: NewJob) -> Job | None:
        job_id = self._requests.get((new.queue, new.request_id))
        return None if job_id is None else self._jobs[job_id]

    def _add(self, new: NewJob, now: float) -> Job:
        self._seq += 1
        queue = self._queue(new.queue)
        [rank], following = fairness.ranks(
            [(new.fairness_key, new.weight)], queue.next_ranks, queue.clock
        )
        queue.next_ranks.update(following)
        job = added(
            new, job_id=random_id(), seq=self._seq, payload=_copy(new.payload), now=now, rank=rank
        )
        queue.size += 1
        queue.count(job, 1)
        self._by_seq[job.seq] = job.id
        self._store(job)
        if new.request_id:
            self._requests[(new.queue, new.request_id)] = job.id
        self._hub.publish(JobChange(job.queue, job.id, job.state))
        return job

    async def claim_new(
        self, job: NewJob, *, owner: str, lease: float, now: float, max_unfinished: int | None
    ) -> Claim:
        [submitted] = await self.submit([job], now=now, max_unfinished=max_unfinished)
        claimed = self._set(
            submitted.job,
            state=JobState.RUNNING,
            attempt=1,
            lease_owner=owner,
            lease_until=now + lease,
            started_at=now,
        )
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
        index = self._queue(queue)
        self._release(index, now)
        rounds: fairness.Rounds[Job] = fairness.Rounds(
            limit=limit,
            now=now,
            policy=policy,
            running=index.running_keys,
            allowance=rate_limits.allowances(index.buckets, now),
        )
        while rounds.wanted:
            rounds.offer(self._candidates(index, rounds.wanted, now, policy, rounds.passed))
        chosen = rounds.chosen
        for key, count in Counter(job.fairness_key for job in chosen).items():
            if key in index.buckets:
                index.buckets[key] = rate_limits.taken(index.buckets[key], count, now)
        claims = []
        for job in chosen:
            index.clock = max(index.clock, job.rank)
            claimed = self._set(
                job,
                state=JobState.RUNNING,
                attempt=job.attempt + 1,
                lease_owner=owner,
                lease_until=now + lease,
                run_at=None,
                started_at=now,
            )
            claims.append(Claim(claimed, claimed.attempt, job.state is JobState.RUNNING))
        return claims

    def _candidates(
        self, queue: _Queue, limit: int, now: float, policy: ClaimPolicy, capped: frozenset[str]
    ) -> list[Job]:
        """What a claim of limit chooses from: of each priority, the first
        claimable jobs in rank order and, with aging, the longest due, each
        passing over the keys in capped."""
        heaps = [*queue.by_rank.values()]
        if policy.aging_interval > 0:
            heaps += queue.by_age.values()
        per_read = fairness.candidates_per_read(limit)
        found: list[Job] = []
        for heap in heaps:
            popped: list[_Entry] = []
            taken = 0
            while taken < per_read and (entry := heap.pop()) is not None:
                popped.append(entry)
                job = self._jobs[entry[3]]
                # Not claimable at this now: filed by a claim at a later one.
                if job.fairness_key not in capped and rules.is_claimable(job, now):
                    found.append(job)
                    taken += 1
            heap.restore(popped)
        return found

    def _release(self, queue: _Queue, now: float) -> None:
        """Move the jobs that time made claimable by now into ready."""
        while (entry := queue.waiting.top()) is not None and entry[0] <= now:
            queue.waiting.pop()
            queue.make_ready(self._jobs[entry[3]], entry[2])

    async def extend(self, claims: Sequence[Claim], *, lease: float, now: float) -> list[bool]:
        held = []
        for claim in claims:
            job = self._jobs.get(claim.id)
            ok = job is not None and rules.holds(job, claim.token)
            if ok and job is not None:
                self._set(job, lease_until=now + lease)
            held.append(ok)
        return held

    async def complete(self, claim: Claim, result: Any, *, hold: bool, now: float) -> Job:
        job = self._held(claim)
        if hold:
            return self._set(job, state=JobState.HELD, result=_copy(result), **_unleased())
        return self._set(
            job, state=JobState.COMPLETED, result=_copy(result), finished_at=now, **_unleased()
        )

    async def update(self, claim: Claim, payload: Any, *, now: float) -> Job:
        job = self._held(claim)
        updated = dataclasses.replace(job, payload=_copy(payload))
        # The payload is no index's key: the version's entries still hold, and
        # a checkpoint files none.
        self._jobs[job.id] = updated
        self._hub.publish(JobChange(updated.queue, updated.id, updated.state))
        return updated

    async def release(self, claim: Claim, *, now: float) -> Job:
        job = self._held(claim)
        return self._set(job, state=JobState.AVAILABLE, run_at=None, **_unleased())

    async def retry(self, claim: Claim, error: str, *, run_at: float, now: float) -> Job:
        job = self._held(claim)
        return self._set(
            job,
            state=JobState.AVAILABLE,
            failures=job.failures + 1,
            error=error,
            run_at=run_at,
            **_unleased(),
        )

    async def fail(self, claim: Claim, error: str, *, now: float) -> Job:
        job = self._held(claim)
        return self._set(
            job,
            state=JobState.FAILED,
            failures=job.failures + 1,
            error=error,
            finished_at=now,
            **_unleased(),
        )

    async def cancel(self, job_id: str, *, now: float) -> Job:
        job = self._transition(job_id, "cancel")
        return self._set(job, state=JobState.CANCELLED, finished_at=now, **_unleased())

    async def redrive(self, job_id: str, *, now: float) -> Job:
        job = self._transition(job_id, "redrive")
        return self._set(job, state=JobState.AVAILABLE, failures=0, run_at=None, finished_at=None)

    async def decide(self, job_id: str, *, approve: bool, review: Any, now: float) -> Job:
        operation = "approve" if approve else "reject"
        job = self._transition(job_id, operation)
        state = rules.TRANSITIONS[operation][1]
        return self._set(job, state=state, finished_at=now, review=_copy(review))

    async def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("job", job_id)
        return job

    async def list(
        self, queue: str, *, states: frozenset[JobState] | None, after: int, limit: int
    ) -> Page:
        index = self._queue(queue).seqs
        seqs = heapq.merge(
            *(index[state].after(after) for state in (JobState if states is None else states))
        )
        matching = [self._jobs[self._by_seq[seq]] for seq in itertools.islice(seqs, limit + 1)]
        page = matching[:limit]
        more = len(matching) > limit
        return Page(page, page[-1].seq if more and page else None)

    async def stats(self, queue: str) -> QueueCounts:
        index = self._queue(queue)
        return QueueCounts(
            dict(index.counts),
            _top_key(index.created),
            _top_key(index.started),
            fairness.busiest(index.pending_keys),
        )

    async def lead(self, name: str, owner: str, *, ttl: float, now: float) -> bool:
        holder, until = self._leads.get(name, ("", now))
        if holder not in ("", owner) and until > now:
            return False
        self._leads[name] = (owner, now + ttl)
        return True

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        index = self._queue(queue)
        while (entry := index.finished.top()) is not None and entry[0] < finished_before:
            index.finished.pop()
            index.expired.push(0, self._jobs[entry[3]], entry[2])
        swept = 0
        later: list[Job] = []
        while swept < limit and (entry := index.expired.pop()) is not None:
            job = self._jobs[entry[3]]
            assert job.finished_at is not None, "only jobs that finished are filed"
            if job.finished_at < finished_before:
                self._remove(index, job)
                swept += 1
            else:  # moved into expired by a sweep with a later cut than this one's
                later.append(job)
        for job in later:
            assert job.finished_at is not None
            index.finished.push(job.finished_at, job, self._versions[job.id])
        index.compact()
        index.next_ranks = {
            key: rank
            for key, rank in index.next_ranks.items()
            if not fairness.forgettable(rank, index.clock)
        }
        return swept

    def _remove(self, queue: _Queue, job: Job) -> None:
        queue.size -= 1
        queue.count(job, -1)
        del self._jobs[job.id], self._versions[job.id], self._by_seq[job.seq]
        self._requests.pop((job.queue, job.request_id), None)

    def _held(self, claim: Claim) -> Job:
        job = self._jobs.get(claim.id)
        if job is None or not rules.holds(job, claim.token):
            raise LostClaimError(claim.id, claim.token)
        return job

    def _transition(self, job_id: str, operation: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("job", job_id)
        if job.state not in rules.TRANSITIONS[operation][0]:
            raise InvalidStateError("job", job_id, job.state.value, operation)
        return job

    def subscribe(self, queue: str) -> contextlib.AbstractContextManager[Subscription[JobChange]]:
        return self._hub.subscribe(queue)

    async def next_due(self, queue: str) -> float | None:
        index = self._queue(queue)
        # Only a key with work waiting wakes a worker when its token is due;
        # the next token's time is a lower bound, so a claim at it finds one.
        tokens = [
            rate_limits.next_token(bucket, bucket.at)
            for key, bucket in index.buckets.items()
            if index.pending_keys.get(key) and bucket.tokens < 1
        ]
        timer = _top_key(index.timers)
        return min([*tokens, *([] if timer is None else [timer])], default=None)

    async def set_rate_limit(
        self, queue: str, key: str, limit: rate_limits.RateLimit | None, *, now: float
    ) -> None:
        index = self._queue(queue)
        if limit is None:
            index.buckets.pop(key, None)
        else:
            index.buckets[key] = rate_limits.fresh(limit, index.buckets.get(key), now)
        self._hub.publish(JobChange(queue, "", JobState.AVAILABLE))

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(self._versions)
        return queue

    def _set(self, job: Job, **changes: Any) -> Job:
        changed = dataclasses.replace(job, **changes)
        if changed.state is not job.state:
            queue = self._queue(job.queue)
            queue.count(job, -1)
            queue.count(changed, 1)
        self._store(changed)
        if changed.state is not job.state or changed.attempt != job.attempt:
            self._hub.publish(JobChange(changed.queue, changed.id, changed.state))
        return changed

    def _store(self, job: Job) -> None:
        """Keep job as it is now, its earlier versions' entries going stale."""
        version = next(self._version)
        self._jobs[job.id] = job
        self._versions[job.id] = version
        queue = self._queue(job.queue)
        queue.file(job, version)
        queue.compact()


def _unleased() -> dict[str, Any]:
    return {"lease_owner": "", "lease_until": None}
