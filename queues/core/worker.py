"""A worker: claims jobs of one queue from a JobStore and runs their attempts.

It claims as many jobs as it has free slots, in one claim, and runs each
attempt under its timeout. A slot is free again as soon as its attempt's
handler returns: the attempt's outcome is written while the next attempt
runs, its job still claimed (RUNNING, under its lease) until the write is
durable, so `concurrency` bounds attempts rather than writes, and the store's
group commit carries one round's outcomes and the next round's claim
together. At most `concurrency` outcomes are in flight beside the attempts.
One heartbeat extends every lease it holds at once,
every `heartbeat` seconds, so a lease outlives an attempt longer than the
lease; a claim the heartbeat finds lost (cancelled, or taken over after a
stall) has its attempt cut. An attempt's end is written under its claim's
token: success completes the job (or holds it for review), failure retries it
after a backoff or, at the last allowed attempt, fails it into the dead-letter
queue (rules.after_failure).

Idle, the worker waits for a change of its queue (a submission, a retry, a
redrive, on any process) or for the store's next_due time, whichever comes
first: it never polls. Delivery is at least once: an attempt whose worker dies
runs again once its lease expires, so a job may run twice within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from queues.backoff import Backoff
from queues.core import rules, traces
from queues.core.attempts import AttemptEnded, AttemptObserver, Outcome
from queues.core.fairness import NO_POLICY, ClaimPolicy
from queues.core.job_store import JobStore
from queues.core.jobs import Claim, Job
from queues.errors import LostClaimError
from queues.storage import StoreError

logger = logging.getLogger("queues.core.worker")

# How long stop() lets a claim in flight finish before it cuts the claim loop.
_CLAIM_SETTLE = 5.0


@dataclass(frozen=True, slots=True)
class Done:
    """What a successful attempt produced."""

    result: Any
    #: The result waits for a human decision (the job is HELD) rather than completing it.
    hold: bool = False


#: Runs one attempt of a job. Raising fails the attempt.
Handler = Callable[[Job], Awaitable[Done]]

#: Runs one attempt given its claim, for a handler that checkpoints as it goes
#: (JobStore.update(claim, payload)). claim.job is the job as claimed: an
#: update answers the job as it is now, and the claim still holds it.
ClaimHandler = Callable[[Claim], Awaitable[Done]]


@dataclass(frozen=True, slots=True)
class WithClaim:
    """Gives a Worker a ClaimHandler in place of a Handler:
    Worker(store, queue, WithClaim(run), owner=...)."""

    handler: ClaimHandler


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    #: Attempts claimed and run at once; 0 claims none (a process serving calls only).
    concurrency: int = 4
    #: How long a claim holds a job without a heartbeat.
    lease: float = 30.0
    #: How often the leases are extended; well under the lease.
    heartbeat: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    #: The longest an attempt may run, in seconds, unless its job says otherwise.
    attempt_timeout: float = 30.0
    #: The longest the worker waits after a store failure before claiming again.
    store_retry_cap: float = 5.0
    #: Told how each attempt ended (a service's metrics); None for no one.
    observer: AttemptObserver | None = None
    #: Aging and the cap per fairness key, which every claim applies.
    policy: ClaimPolicy = NO_POLICY

    def __post_init__(self) -> None:
        if self.concurrency < 0:
            raise ValueError(f"concurrency must not be negative; got {self.concurrency}")
        if not 0 < self.heartbeat < self.lease:
            raise ValueError(
                f"the heartbeat ({self.heartbeat} s) must be positive and under the lease "
                f"({self.lease} s)"
            )


class Worker:
    def __init__(
        self,
        store: JobStore,
        queue: str,
        handler: Handler | WithClaim,
        *,
        owner: str,
        settings: WorkerSettings = WorkerSettings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._queue = queue
        self._handler = handler.handler if isinstance(handler, WithClaim) else _of_job(handler)
        self._owner = owner
        self._settings = settings
        self._clock = clock
        # Every claim an attempt task holds, running or writing its outcome.
        self._held: dict[str, tuple[Claim, asyncio.Task[None]]] = {}
        # Of those, the ones whose handler runs: the slots taken.
        self._busy: set[str] = set()
        # Claims its callers run in their own tasks (run_claimed): heartbeated too.
        self._inline: dict[str, Claim] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._claiming: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        """Attempts running now (not counting outcomes being written)."""
        return len(self._busy)

    async def start(self) -> None:
        """Start the heartbeat and, with a concurrency above 0, claiming."""
        self._stopping = False
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name=f"heartbeat-{self._queue}")]
        if self._settings.concurrency == 0:
            return
        listening = asyncio.Event()
        listen = asyncio.create_task(self._listen(listening), name=f"listen-{self._queue}")
        self._tasks.append(listen)
        # Subscribed before the first claim, so no submission falls in between.
        subscribed = asyncio.create_task(listening.wait())
        await asyncio.wait([listen, subscribed], return_when=asyncio.FIRST_COMPLETED)
        subscribed.cancel()
        if listen.done():
            listen.result()  # the subscription failed: raise why
        self._claiming = asyncio.create_task(self._claim_loop(), name=f"worker-{self._queue}")
        self._tasks.append(self._claiming)

    async def run_claimed(self, claim: Claim) -> None:
        """Run the attempt of a job its caller claimed (an inline run), in the
        caller's task, its lease kept by the heartbeat. Raises LostClaimError
        if the job was taken meanwhile (cancelled, say), and StoreError if its
        end could not be written."""
        self._inline[claim.id] = claim
        try:
            await self._run(claim)
        finally:
            self._inline.pop(claim.id, None)

    async def stop(self, grace: float = 0.0) -> None:
        """Claim nothing more; let running attempts end within grace seconds,
        then cut them and hand their jobs back (JobStore.release), so that any
        process claims them at once. A job whose hand-back fails runs again
        once its lease expires."""
        self._stopping = True
        self._wake.set()
        if self._claiming is not None:
            # A claim in flight is let finish: its jobs are then held here and
            # handed back, not left claimed by nobody until their leases expire.
            await asyncio.wait([self._claiming], timeout=_CLAIM_SETTLE)
            self._claiming = None
        attempts = [task for _, task in self._held.values()]
        if attempts:
            await asyncio.wait(attempts, timeout=grace)
        cut = [claim for claim, _ in self._held.values()]
        for task in [*attempts, *self._tasks]:
            task.cancel()
        await asyncio.gather(*attempts, *self._tasks, return_exceptions=True)
        for claim in cut:
            try:
                # LostClaimError: it ended as it was cut, or its lease ran out.
                with contextlib.suppress(LostClaimError):
                    await self._store.release(claim, now=self._clock())
            except StoreError as error:
                logger.warning("cannot hand back job %s: %s", claim.id, error)

    async def _listen(self, listening: asyncio.Event) -> None:
        with self._store.subscribe(self._queue) as changes:
            listening.set()
            async for _ in changes:
                self._wake.set()

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim()
                wait = await self._idle_for()
                failures = 0
            except StoreError as error:
                failures += 1
                wait = min(self._settings.store_retry_cap, 0.1 * 2**failures)
                if failures == 1:
                    logger.warning("cannot claim jobs of %s: %s", self._queue, error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _free(self) -> int:
        """Jobs the next claim may take: a free slot each, while the outcomes
        being written number under `concurrency`."""
        concurrency = self._settings.concurrency
        return min(concurrency - len(self._busy), 2 * concurrency - len(self._held))

    async def _claim(self) -> None:
        free = self._free()
        if free <= 0:
            return
        claims = await self._store.claim(
            self._queue,
            self._owner,
            limit=free,
            lease=self._settings.lease,
            now=self._clock(),
            policy=self._settings.policy,
        )
        for claim in claims:
            task = asyncio.create_task(self._attempt(claim), name=f"attempt-{claim.id}")
            self._held[claim.id] = (claim, task)
            self._busy.add(claim.id)

    async def _idle_for(self) -> float | None:
        """How long to wait for a change before claiming again: until next_due,
        or, with nothing free, until a slot or a write ends (which wakes us)."""
        if self._free() <= 0:
            return None
        due = await self._store.next_due(self._queue)
        return None if due is None else max(0.0, due - self._clock())

    async def _attempt(self, claim: Claim) -> None:
        try:
            write = await self._outcome(claim)
            self._busy.discard(claim.id)
            self._wake.set()  # the slot is free while the outcome is written
            await write()
        except LostClaimError:
            logger.info(
                "job %s was taken from attempt %d; its outcome is dropped", claim.id, claim.token
            )
        except StoreError as error:
            # Its lease expires, and the job runs again: at least once.
            logger.warning("cannot record the attempt of job %s: %s", claim.id, error)
        finally:
            self._busy.discard(claim.id)
            self._held.pop(claim.id, None)
            self._wake.set()

    async def _run(self, claim: Claim) -> None:
        write = await self._outcome(claim)
        await write()

    async def _outcome(self, claim: Claim) -> Callable[[], Awaitable[Job]]:
        """Run the attempt; answers how its outcome is written."""
        job = claim.job
        timeout = job.attempt_timeout or self._settings.attempt_timeout
        started = time.perf_counter()
        outcome = Outcome.FAILED
        with traces.attempt_span(self._queue, job.id, claim.token, job.trace) as span:
            try:
                async with asyncio.timeout(timeout):
                    done = await self._handler(claim)
            except TimeoutError:
                outcome = Outcome.TIMED_OUT
                error = f"attempt timed out after {timeout:g}s"
            except asyncio.CancelledError:
                self._observe(claim, Outcome.CANCELLED, started)
                traces.end_attempt(span, Outcome.CANCELLED, "the attempt was cut")
                raise
            except Exception as failure:
                error = f"{type(failure).__name__}: {failure}"
            else:
                self._observe(claim, Outcome.SUCCEEDED, started)
                traces.end_attempt(span, Outcome.SUCCEEDED)
                return functools.partial(
                    self._store.complete, claim, done.result, hold=done.hold, now=self._clock()
                )
            traces.end_attempt(span, outcome, error)
        now = self._clock()
        match rules.after_failure(job.failures + 1, job.max_attempts, self._settings.backoff, now):
            case rules.RetryAt(run_at):
                self._observe(claim, outcome, started, retried=True)
                return functools.partial(self._store.retry, claim, error, run_at=run_at, now=now)
            case rules.DeadLetter():
                self._observe(claim, outcome, started, dead_lettered=True)
                return functools.partial(self._store.fail, claim, error, now=now)

    def _observe(
        self,
        claim: Claim,
        outcome: Outcome,
        started: float,
        *,
        retried: bool = False,
        dead_lettered: bool = False,
    ) -> None:
        observer = self._settings.observer
        if observer is None:
            return
        job = claim.job
        waited = None
        if claim.token == 1 and job.started_at is not None:
            waited = max(0.0, job.started_at - job.created_at)
        observer(
            AttemptEnded(
                queue=self._queue,
                outcome=outcome,
                ran=time.perf_counter() - started,
                waited=waited,
                retried=retried,
                dead_lettered=dead_lettered,
                taken_over=claim.taken_over,
            )
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat)
            held = [claim for claim, _ in self._held.values()] + list(self._inline.values())
            if not held:
                continue
            try:
                kept = await self._store.extend(held, lease=self._settings.lease, now=self._clock())
            except StoreError as error:
                logger.warning("cannot extend the leases of %s: %s", self._queue, error)
                continue
            for claim, ok in zip(held, kept, strict=True):
                attempt = self._held.get(claim.id)
                if not ok and attempt is not None:
                    attempt[1].cancel()


def _of_job(handler: Handler) -> ClaimHandler:
    return lambda claim: handler(claim.job)
