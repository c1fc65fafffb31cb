"""A job as a store would answer it, for tests of the plain functions that
read jobs (queues/core/rules.py, requestor_svc/task_jobs.py)."""

import dataclasses
from typing import Any

from queues.core.jobs import Job, JobState

#: An AVAILABLE job of queue "q" that nothing has touched yet.
BASE = Job(
    id="j",
    queue="q",
    seq=1,
    payload=None,
    priority=2,
    state=JobState.AVAILABLE,
    max_attempts=3,
    attempt=0,
    failures=0,
    created_at=0.0,
    run_at=None,
    lease_owner="",
    lease_until=None,
    result=None,
    error="",
    finished_at=None,
    request_id="",
    fingerprint="",
    attempt_timeout=None,
    started_at=None,
    review=None,
)


def a_job(**changes: Any) -> Job:
    """BASE with changes."""
    return dataclasses.replace(BASE, **changes)
