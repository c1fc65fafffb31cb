"""How every store carries out a submission: a plan made from what the store
has seen, then checked against the bound, then carried out, all in one
transaction so that a batch is added all or none."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from queues.core.jobs import Job, NewJob, Submitted
from queues.errors import RequestConflictError

#: Per submitted job: the job its request_id made before, the index of the
#: batch's earlier job with that request_id, or the job itself, to be added.
Plan = list[Job | int | NewJob]


def plan(jobs: Sequence[NewJob], seen: Callable[[NewJob], Job | None]) -> Plan:
    """The plan for jobs; seen(job) is the stored job of its queue and
    request_id, if any. Raises RequestConflictError for a request_id reused with
    another fingerprint, before or within the batch."""
    planned: Plan = []
    first: dict[tuple[str, str], int] = {}
    for index, new in enumerate(jobs):
        key = (new.queue, new.request_id)
        earlier = first.get(key) if new.request_id else None
        if earlier is not None:
            same_request(jobs[earlier].fingerprint, new)
            planned.append(earlier)
            continue
        job = seen(new) if new.request_id else None
        if job is not None:
            same_request(job.fingerprint, new)
            planned.append(job)
            continue
        if new.request_id:
            first[key] = index
        planned.append(new)
    return planned


def adding(planned: Plan) -> Counter[str]:
    """How many new jobs the plan adds to each queue."""
    return Counter(entry.queue for entry in planned if isinstance(entry, NewJob))


def carry_out(planned: Plan, add: Callable[[NewJob], Job]) -> list[Submitted]:
    """Add the plan's new jobs with add, answering one Submitted per job."""
    submitted: list[Submitted] = []
    for entry in planned:
        if isinstance(entry, Job):
            submitted.append(Submitted(entry, created=False))
        elif isinstance(entry, int):
            submitted.append(Submitted(submitted[entry].job, created=False))
        else:
            submitted.append(Submitted(add(entry), created=True))
    return submitted


def same_request(fingerprint: str, new: NewJob) -> None:
    """Raise RequestConflictError if new reuses a request_id whose request had fingerprint."""
    if fingerprint != new.fingerprint:
        raise RequestConflictError(new.request_id)
