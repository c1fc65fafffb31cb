"""The requestor's tasks as a policy over the durable core: the store owns them.

Every task is jobs of one JobStore (task_jobs.py says which and what they
hold), so any number of replicas over one store serve one set of tasks: any
replica places, reads and cancels any task, and the workers of every replica
claim them, in priority order, under a lease. Two workers per replica: one
watches tasks whose order has had no event (up to max_waiting_tasks at once,
with no slot), the other follows started orders in max_concurrent_tasks slots.

A replica that dies leaves its claims to run out; another replica then claims
the task again and resumes from the cursor its last attempt saved. A task
cancelled on any replica is cut at once on the replica running it, which hears
of it through the store's change notifications.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from queues.backoff import Backoff
from queues.core.attempts import AttemptObserver
from queues.core.fairness import NO_POLICY, ClaimPolicy
from queues.core.job_store import JobStore
from queues.core.jobs import Claim, Job, JobState, NewJob
from queues.core.led_duty import run_led_periodically
from queues.core.worker import Done, WithClaim, Worker, WorkerSettings
from queues.errors import (
    ClosedError,
    InvalidStateError,
    LostClaimError,
    NotFoundError,
    TaskFailedError,
)
from queues.storage import StoreError
from queues.task import TaskStatus
from requestor_svc.checkpoints import Follow, SavedProgress, follow_saving
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import Placement
from requestor_svc.order_tasks import (
    WAITING_FOR_START,
    AwaitStart,
    OrderTask,
    PlacedTask,
    PoolStats,
)
from requestor_svc.task_jobs import (
    MAX_ATTEMPTS,
    READY,
    TIMED_OUT_QUEUED,
    TIMED_OUT_RUNNING,
    WAITING,
    Outcome,
    ReadyPayload,
    TaskPayload,
    fingerprint,
    is_live,
    pool_stats,
    queue_position,
    ready_id,
    recorded_outcome,
    task_view,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The most final jobs one sweep removes from a queue per store call.
_SWEEP_BATCH = 500


class CoreTasks:
    def __init__(
        self,
        store: JobStore,
        follow: Follow,
        await_start: AwaitStart,
        *,
        max_concurrent_tasks: int,
        max_waiting_tasks: int,
        retention: float,
        sweep_interval: float,
        default_timeout: float,
        longest_timeout: float,
        owner: str,
        lease: float = 30.0,
        heartbeat: float = 10.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        observer: AttemptObserver | None = None,
        policy: ClaimPolicy = NO_POLICY,
    ) -> None:
        """store: opened and closed by the caller. longest_timeout: the longest
        a task may run (what a placement's timeout is held under), after which
        an attempt is cut whatever it does: a backstop, since each attempt ends
        itself at its task's deadline. owner: who holds this replica's claims.
        policy: aging for both queues; its cap per key for the slots only (a
        task waiting for its order's first event holds none)."""
        self._store = store
        self._follow = follow
        self._await_start = await_start
        self.max_concurrent_tasks = max_concurrent_tasks
        self._retention = retention
        self._sweep_interval = sweep_interval
        self._default_timeout = default_timeout
        self._owner = owner
        self._lease = lease
        self._clock = clock
        settings = WorkerSettings(
            lease=lease,
            heartbeat=heartbeat,
            backoff=backoff or Backoff(),
            attempt_timeout=max(longest_timeout, default_timeout) + lease,
            observer=observer,
        )
        self._workers = [
            Worker(
                store,
                queue,
                WithClaim(handler),
                owner=owner,
                settings=dataclasses.replace(
                    settings, concurrency=concurrency, policy=queue_policy
                ),
                clock=clock,
            )
            for queue, handler, concurrency, queue_policy in (
                (
                    WAITING,
                    self._wait_for_start,
                    max_waiting_tasks,
                    dataclasses.replace(policy, max_per_key=None),
                ),
                (READY, self._follow_order, max_concurrent_tasks, policy),
            )
        ]
        # The asyncio tasks running this replica's attempts, by job id: a
        # cancel heard from any replica cuts them at once.
        self._attempts: dict[str, asyncio.Task[object]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._accepting = False

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start both workers, the cancel listener and the retention sweep."""
        listening = asyncio.Event()
        self._background = [
            asyncio.create_task(self._cut_cancelled(listening), name="task-cancels"),
            asyncio.create_task(
                run_led_periodically(
                    self._store,
                    "sweep:requestor-tasks",
                    self._owner,
                    self.sweep_expired,
                    interval=self._sweep_interval,
                    clock=self._clock,
                ),
                name="task-sweep",
            ),
        ]
        await listening.wait()
        for worker in self._workers:
            await worker.start()
        self._accepting = True

    async def stop(self) -> None:
        """Refuse new orders and cut the running attempts: their tasks run
        again, here or on another replica, once their leases run out."""
        self._accepting = False
        for worker in self._workers:
            await worker.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []

    # -- commands --------------------------------------------------------------

    async def place(self, placement: Placement, request_id: str = "") -> PlacedTask:
        """Queue a task following the order, once the store holds it; a request
        id already used for the same placement answers that first task.
        RequestConflictError for another placement; ClosedError while stopped;
        StoreError if the store could not take it."""
        if not self._accepting:
            raise ClosedError("requestor tasks")
        now = self._clock()
        timeout = self._default_timeout if placement.timeout is None else placement.timeout
        waiting, ready = await asyncio.gather(self._store.stats(WAITING), self._store.stats(READY))
        task = TaskPayload(
            placement,
            request_id,
            deadline=now + timeout,
            queue_position=queue_position(waiting, ready, int(placement.priority)),
            progress=OrderProgress(placement.order_req_id),
        )
        job = NewJob(
            queue=WAITING,
            payload=task.encode(),
            priority=int(placement.priority),
            max_attempts=MAX_ATTEMPTS,
            request_id=request_id,
            fingerprint=fingerprint(placement) if request_id else "",
            fairness_key=placement.fairness_key,
        )
        [submitted] = await self._store.submit([job], now=now)
        placed = TaskPayload.decode(submitted.job.payload)
        return PlacedTask(submitted.job.id, placed.queue_position)

    async def result(self, task_id: str) -> OrderTask:
        """The task as the store holds it now; NotFoundError if unknown or removed."""
        waiting = await self._waiting_job(task_id)
        return task_view(waiting, await self._ready_of(waiting), self._clock())

    async def cancel(self, task_id: str) -> OrderTask:
        """End a queued or running task CANCELLED, keeping what it collected.
        InvalidStateError if it is final; NotFoundError if unknown. Whichever
        replica runs it cuts it at once."""
        # Shielded: a caller going away must not leave the task settled with
        # its ready job still running to the order's end.
        return await asyncio.shield(self._cancel(task_id))

    async def stats(self) -> PoolStats:
        waiting, ready = await asyncio.gather(self._store.stats(WAITING), self._store.stats(READY))
        return pool_stats(waiting, ready, self.max_concurrent_tasks)

    async def sweep_expired(self) -> int:
        """Remove tasks final for longer than the retention, with their request
        ids; answers how many jobs went. The periodic sweep runs it on one
        replica per interval (JobStore.lead)."""
        cutoff = self._clock() - self._retention
        removed = 0
        for queue in (WAITING, READY):
            while swept := await self._store.sweep(
                queue, finished_before=cutoff, limit=_SWEEP_BATCH
            ):
                removed += swept
        return removed

    # -- reading -----------------------------------------------------------------

    async def _waiting_job(self, task_id: str) -> Job:
        with _as_task(task_id):
            job = await self._store.get(task_id)
        # Another queue's job (a ready job, or another service's) is no task.
        if job.queue != WAITING:
            raise NotFoundError("task", task_id)
        return job

    async def _ready_of(self, waiting: Job) -> Job | None:
        """The ready job the task moved on to, unless the waiting job records
        the outcome (or it has not moved on)."""
        moved_to = ready_id(waiting)
        if moved_to is None or recorded_outcome(waiting) is not None:
            return None
        with contextlib.suppress(NotFoundError):  # swept: its task is final
            return await self._store.get(moved_to)
        return None

    # -- cancelling --------------------------------------------------------------

    async def _cancel(self, task_id: str) -> OrderTask:
        waiting = await self._waiting_job(task_id)
        self._refuse_final(waiting)
        ready = await self._ready_of(waiting)
        now = self._clock()
        if waiting.state is JobState.HELD and ready is not None:
            view = task_view(waiting, ready, now)
            running = is_live(ready, now)
            outcome = Outcome(
                TaskStatus.CANCELLED,
                f"cancelled while {'running' if running else 'queued'}",
                view.progress,
                ready.started_at if running else None,
                now,
            )
            # The task is settled first: were this to stop between the two
            # writes, the ready job would only run on to find it settled.
            await self._settle(task_id, outcome)
            moved_to: str | None = ready.id
        else:
            with _as_task(task_id):
                cancelled = await self._store.cancel(task_id, now=now)
            moved_to = ready_id(cancelled)
        if moved_to is not None:
            with contextlib.suppress(InvalidStateError, NotFoundError):
                await self._store.cancel(moved_to, now=self._clock())
        return await self.result(task_id)

    def _refuse_final(self, waiting: Job) -> None:
        if waiting.state.is_final:
            status = task_view(waiting, None, self._clock()).record.status
            raise InvalidStateError("task", waiting.id, status.value, "cancel")

    async def _settle(self, task_id: str, outcome: Outcome) -> None:
        """Record the outcome of a task that moved on. InvalidStateError (said of
        the task) if it was settled already."""
        try:
            await self._store.decide(
                task_id, approve=True, review=outcome.encode(), now=self._clock()
            )
        except InvalidStateError:
            self._refuse_final(await self._waiting_job(task_id))
            raise

    async def _cut_cancelled(self, listening: asyncio.Event) -> None:
        with self._store.subscribe(WAITING) as waiting, self._store.subscribe(READY) as ready:
            listening.set()
            changes = [waiting, ready]
            nexts = {asyncio.ensure_future(c.next_within(None)): c for c in changes}
            try:
                while True:
                    done, _ = await asyncio.wait(nexts, return_when=asyncio.FIRST_COMPLETED)
                    for future in done:
                        subscription = nexts.pop(future)
                        change = future.result()
                        if change is not None and change.state is JobState.CANCELLED:
                            attempt = self._attempts.get(change.job_id)
                            if attempt is not None:
                                attempt.cancel()
                        nexts[asyncio.ensure_future(subscription.next_within(None))] = subscription
            finally:
                for future in nexts:
                    future.cancel()

    # -- the attempts ------------------------------------------------------------

    async def _wait_for_start(self, claim: Claim) -> Done:
        """A waiting job's attempt: watch the order until its first event, then
        move the task on to a ready job; or end the task, at its deadline or
        when the order cannot be watched."""
        task = TaskPayload.decode(claim.job.payload)
        progress = SavedProgress.of(task.progress)

        async def start(progress: OrderProgress) -> OrderProgress:
            await self._await_start(progress)
            return progress

        async def save(snapshot: OrderProgress) -> None:
            await self._save(claim, dataclasses.replace(task, progress=snapshot).encode())

        with self._running(claim):
            try:
                started = await self._before(task.deadline, follow_saving(start, progress, save))
            except Exception as error:
                return Done(self._failed(claim, error, progress, None).encode())
            if started is None:
                timed_out = f"deadline passed while {WAITING_FOR_START}"
                outcome = Outcome(
                    TaskStatus.TIMED_OUT, timed_out, progress.snapshot(), None, task.deadline
                )
                return Done(outcome.encode())
            ready = NewJob(
                queue=READY,
                payload=ReadyPayload(claim.id, task.deadline, started).encode(),
                priority=claim.job.priority,
                max_attempts=MAX_ATTEMPTS,
                # Moved on once, however often this attempt is repeated.
                request_id=claim.id,
                fairness_key=claim.job.fairness_key,
            )
            [submitted] = await self._store.submit([ready], now=self._clock())
            return Done({"ready": submitted.job.id}, hold=True)

    async def _follow_order(self, claim: Claim) -> Done:
        """A ready job's attempt: follow the order from the saved cursor until it
        completes, saving the cursor as events arrive, then settle the task."""
        ready = ReadyPayload.decode(claim.job.payload)
        progress = SavedProgress.of(ready.progress)
        if claim.token > 1:
            # Another attempt, here or on a dead replica, had the stream open.
            progress.reconnected()
        started_at = claim.job.started_at
        with self._running(claim):
            waiting = await self._moved_on(ready.task_id)
            if waiting is None or waiting.state.is_final:
                # Settled while it was moving on (cancelled, or timed out by a
                # later attempt of the waiting job): nothing to follow.
                return Done(None)
            if self._clock() >= ready.deadline:
                outcome = Outcome(
                    TaskStatus.TIMED_OUT, TIMED_OUT_QUEUED, progress, None, ready.deadline
                )
                return Done(await self._finish(ready.task_id, outcome))

            async def save(snapshot: OrderProgress) -> None:
                checkpoint = ReadyPayload(ready.task_id, ready.deadline, snapshot)
                await self._save(claim, checkpoint.encode())

            try:
                followed = await self._before(
                    ready.deadline, follow_saving(self._follow, progress, save)
                )
            except LostClaimError:
                raise  # cancelled, or taken over: the outcome is not ours to write
            except Exception as error:
                outcome = self._failed(claim, error, progress, started_at)
            else:
                if followed is None:
                    outcome = Outcome(
                        TaskStatus.TIMED_OUT,
                        TIMED_OUT_RUNNING,
                        progress.snapshot(),
                        started_at,
                        ready.deadline,
                    )
                else:
                    outcome = Outcome(
                        TaskStatus.SUCCEEDED, "", followed.snapshot(), started_at, self._clock()
                    )
            return Done(await self._finish(ready.task_id, outcome))

    async def _moved_on(self, task_id: str) -> Job | None:
        """The task's waiting job once it is HELD (the task moved on) or final;
        None if it is gone. A ready job can be claimed before its waiting job is
        held, in the moment between the two writes, or for a lease when the
        replica moving it on died between them."""
        with self._store.subscribe(WAITING) as changes:
            while True:
                try:
                    job = await self._store.get(task_id)
                except NotFoundError:
                    return None
                if job.state is JobState.HELD or job.state.is_final:
                    return job
                # A notification lost on a reconnect costs a lease, no more.
                await changes.next_within(self._lease)

    async def _finish(self, task_id: str, outcome: Outcome) -> object:
        """Settle the task with outcome, unless it was settled already (by a
        cancel, or another attempt); the ready job's result."""
        with contextlib.suppress(InvalidStateError, NotFoundError):
            await self._store.decide(
                task_id, approve=True, review=outcome.encode(), now=self._clock()
            )
        return outcome.encode()

    async def _save(self, claim: Claim, payload: dict[str, Any]) -> None:
        try:
            await self._store.update(claim, payload, now=self._clock())
        except StoreError as error:
            # The follow goes on: the next save, or the outcome, carries it.
            log.warning("cannot save the progress of job %s: %s", claim.id, error)

    async def _before(self, deadline: float, work: Awaitable[T]) -> T | None:
        """What work answers, or None if the deadline (epoch seconds) came first
        and cut it."""
        limit = asyncio.timeout(max(0.0, deadline - self._clock()))
        try:
            async with limit:
                return await work
        except TimeoutError:
            if limit.expired():
                return None
            raise

    @contextlib.contextmanager
    def _running(self, claim: Claim) -> Iterator[None]:
        """While the attempt of claim runs in this task: cut if its job is cancelled."""
        current = asyncio.current_task()
        assert current is not None, "an attempt runs in a task"
        self._attempts[claim.id] = current
        try:
            yield
        finally:
            self._attempts.pop(claim.id, None)

    @staticmethod
    def _failed(
        claim: Claim, error: Exception, progress: OrderProgress, started_at: float | None
    ) -> Outcome:
        # A foreseen failure says all in its message; any other needs its traceback.
        foreseen = isinstance(error, TaskFailedError)
        log.warning(
            "task of job %s failed: %s", claim.id, error, exc_info=None if foreseen else error
        )
        return Outcome(
            TaskStatus.FAILED,
            f"{type(error).__name__}: {error}",
            progress.snapshot(),
            started_at,
            time.time(),
        )


@contextlib.contextmanager
def _as_task(task_id: str) -> Iterator[None]:
    """The store's errors about a job, said of the task it is."""
    try:
        yield
    except NotFoundError:
        raise NotFoundError("task", task_id) from None
    except InvalidStateError as error:
        raise InvalidStateError("task", task_id, error.state, error.operation) from None
