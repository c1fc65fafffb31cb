"""A JobStore in this process's memory, for tests: the contract's reference,
written straight from the rules. Payloads and results are copied through JSON,
as a real store keeps them."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from queues.core import rules, submission
from queues.core.changes import ChangeHub, JobChange, Subscription
from queues.core.jobs import Claim, Job, JobState, NewJob, Page, QueueCounts, Submitted
from queues.errors import (
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    QueueFullError,
)
from queues.ids import random_id


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


class MemoryJobStore:
    name = "memory job store"

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        # (queue, request_id) → job id
        self._requests: dict[tuple[str, str], str] = {}
        self._seq = 0
        self._hub = ChangeHub()

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
                unfinished = sum(
                    1
                    for job in self._jobs.values()
                    if job.queue == queue and job.state.is_unfinished
                )
                if unfinished + count > max_unfinished:
                    raise QueueFullError(max_unfinished, 0.0)
        return submission.carry_out(planned, lambda new: self._add(new, now))

    def _seen(self, new: NewJob) -> Job | None:
        job_id = self._requests.get((new.queue, new.request_id))
        return None if job_id is None else self._jobs[job_id]

    def _add(self, new: NewJob, now: float) -> Job:
        self._seq += 1
        job = Job(
            id=random_id(),
            queue=new.queue,
            seq=self._seq,
            payload=_copy(new.payload),
            priority=new.priority,
            state=JobState.AVAILABLE,
            max_attempts=new.max_attempts,
            attempt=0,
            failures=0,
            created_at=now,
            run_at=None,
            lease_owner="",
            lease_until=None,
            result=None,
            error="",
            finished_at=None,
            request_id=new.request_id,
            fingerprint=new.fingerprint,
            attempt_timeout=new.attempt_timeout,
            started_at=None,
            review=None,
        )
        self._jobs[job.id] = job
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
        self, queue: str, owner: str, *, limit: int, lease: float, now: float
    ) -> list[Claim]:
        ready = sorted(
            (
                job
                for job in self._jobs.values()
                if job.queue == queue and rules.is_claimable(job, now)
            ),
            key=rules.claim_order,
        )
        claims = []
        for job in ready[:limit]:
            claimed = self._set(
                job,
                state=JobState.RUNNING,
                attempt=job.attempt + 1,
                lease_owner=owner,
                lease_until=now + lease,
                run_at=None,
                started_at=now,
            )
            claims.append(Claim(claimed, claimed.attempt))
        return claims

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
        matching = sorted(
            (
                job
                for job in self._jobs.values()
                if job.queue == queue
                and job.seq > after
                and (states is None or job.state in states)
            ),
            key=lambda job: job.seq,
        )
        page = matching[:limit]
        more = len(matching) > limit
        return Page(page, page[-1].seq if more and page else None)

    async def stats(self, queue: str) -> QueueCounts:
        jobs = [job for job in self._jobs.values() if job.queue == queue]
        return QueueCounts(
            dict(Counter((job.state, job.priority) for job in jobs)),
            min((j.created_at for j in jobs if j.state is JobState.AVAILABLE), default=None),
            min(
                (j.started_at for j in jobs if j.state is JobState.RUNNING and j.started_at),
                default=None,
            ),
        )

    async def sweep(self, queue: str, *, finished_before: float, limit: int) -> int:
        expired = sorted(
            (
                job
                for job in self._jobs.values()
                if job.queue == queue
                and job.state.is_final
                and job.finished_at is not None
                and job.finished_at < finished_before
            ),
            key=lambda job: job.seq,
        )[:limit]
        for job in expired:
            del self._jobs[job.id]
            self._requests.pop((job.queue, job.request_id), None)
        return len(expired)

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

    def subscribe(self, queue: str) -> contextlib.AbstractContextManager[Subscription]:
        return self._hub.subscribe(queue)

    async def next_due(self, queue: str) -> float | None:
        times = [
            job.run_at if job.state is JobState.AVAILABLE else job.lease_until
            for job in self._jobs.values()
            if job.queue == queue and job.state in (JobState.AVAILABLE, JobState.RUNNING)
        ]
        return min((when for when in times if when is not None), default=None)

    def _set(self, job: Job, **changes: Any) -> Job:
        changed = dataclasses.replace(job, **changes)
        self._jobs[job.id] = changed
        if changed.state is not job.state or changed.attempt != job.attempt:
            self._hub.publish(JobChange(changed.queue, changed.id, changed.state))
        return changed


def _unleased() -> dict[str, Any]:
    return {"lease_owner": "", "lease_until": None}
