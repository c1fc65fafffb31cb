"""Orders in the durable core, shared by every replica over one store.

What each order keeps, in a LogStore:
- its events (event_entries.EVENTS): gapless sequences whichever replica
  appends, each proposal's event under its proposal's key (so it is appended
  once), ORDER_COMPLETED last, closing the log;
- its accepted proposals (PROPOSALS), keyed by proposal id, each with its
  quote's id: the log's limit is the order's proposal cap, and closing it is
  what refuses new proposals once a completion is asked for;
- the request ids used on it (ORDER_REQUESTS), so that the retention sweep
  deletes them with it; each request id is its own one-entry log of REQUESTS.

And in a JobStore, two queues whose jobs any replica's worker claims under a
lease, so that a replica's death leaves nothing undone:
- PRICING, one job per accepted proposal: follow its quote to the end and
  append its event;
- COMPLETIONS, one job per order whose completion must wait: settle every
  proposal without an event (withdrawing those whose quote awaits a human at
  once, the rest after completion_wait), then append ORDER_COMPLETED.

Acceptance writes the proposal first and its pricing job second. A crash in
between leaves a proposal without a job: a repeat of the submission, and the
order's completion, submit the job again (it is idempotent by its request id),
and the completion settles such a proposal itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from processor_svc.event_entries import (
    COMPLETED_KEY,
    EVENTS,
    completed_body,
    event_of,
    proposal_body,
    proposal_key,
)
from processor_svc.orders import Event, ProcessorStats
from processor_svc.pricing import OrderFullError, Pricer, PricingOutcome, cut_error
from processor_svc.quote_pricer import ProposalQuote
from queues.core.attempts import AttemptObserver
from queues.core.job_store import JobStore
from queues.core.jobs import Job, JobState, NewJob
from queues.core.led_duty import run_led_periodically
from queues.core.log_store import (
    LogClosedError,
    LogEntry,
    LogFullError,
    LogHead,
    LogRemovedError,
    LogStore,
)
from queues.core.shared_reads import SharedReads
from queues.core.worker import Done, Worker, WorkerSettings
from queues.errors import (
    ClosedError,
    CursorOutOfRangeError,
    ExpiredError,
    InvalidStateError,
    RequestConflictError,
    WatchLimitError,
)
from queues.order_events import OrderEventKind
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

log = logging.getLogger(__name__)

#: The space of the orders' accepted proposals.
PROPOSALS = "order-proposals"
#: The space of each order's request ids (one entry per id, keyed by it).
ORDER_REQUESTS = "order-request-ids"
#: The space of request ids: one log per id, holding what it was first used for.
REQUESTS = "processor-requests"
#: The job queues of pricing and of completions that wait.
PRICING = "proposal-pricing"
COMPLETIONS = "order-completions"
#: Seconds a watch refused for too many awaited orders is told to wait.
AWAITED_RETRY_AFTER = 1.0
#: Events read per store round trip by a watcher catching up.
_READ_BATCH = 100
#: Orders removed per store call by a sweep.
_SWEEP_BATCH = 500
#: Attempts at a pricing or completion job: each retries a store or worker
#: failure, since the pricing itself reports its failures as the event.
_ATTEMPTS = 20


class StoredOrders:
    def __init__(
        self,
        logs: LogStore,
        jobs: JobStore,
        pricer: Pricer[ProposalQuote, quote_pb.QueueMessage],
        *,
        owner: str,
        max_proposals: int,
        completion_wait: float,
        pricing_timeout: float,
        completed_retention: float,
        tombstone_retention: float,
        sweep_interval: float,
        max_awaited_orders: int,
        lease: float,
        heartbeat: float,
        pricing_concurrency: int,
        clock: Callable[[], float] = time.time,
        observer: AttemptObserver | None = None,
    ) -> None:
        self._logs = logs
        self._jobs = jobs
        self._pricer = pricer
        self._owner = owner
        self._max_proposals = max_proposals
        self._completion_wait = completion_wait
        self._completed_retention = completed_retention
        self._tombstone_retention = tombstone_retention
        self._sweep_interval = sweep_interval
        self._max_awaited = max_awaited_orders
        self._clock = clock
        # The watchers of one order, woken by one append, read it once.
        self._entries: SharedReads[tuple[str, int], list[LogEntry]] = SharedReads()
        self._heads: SharedReads[str, LogHead | None] = SharedReads()
        # An attempt outlives the longest pricing, so the worker never cuts one
        # that the pricer would still finish.
        settings = WorkerSettings(
            concurrency=pricing_concurrency,
            lease=lease,
            heartbeat=heartbeat,
            attempt_timeout=pricing_timeout + completion_wait + lease,
            observer=observer,
        )
        self._pricing = Worker(
            jobs, PRICING, _logging_failures(self._price), owner=owner, settings=settings
        )
        self._completions = Worker(
            jobs, COMPLETIONS, _logging_failures(self._finish), owner=owner, settings=settings
        )
        self._watchers = 0
        # Orders with no event yet, with how many of this process's watchers wait on each.
        self._awaited: dict[str, int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def logs(self) -> LogStore:
        return self._logs

    async def start(self) -> None:
        """Start claiming pricing and completion jobs, and the retention sweep."""
        self._stopped = False
        await self._pricing.start()
        await self._completions.start()
        self._sweeper = asyncio.create_task(
            run_led_periodically(
                self._jobs,
                "sweep:orders",
                self._owner,
                self.sweep_expired,
                interval=self._sweep_interval,
                clock=self._clock,
            ),
            name="orders-sweep",
        )

    async def stop(self) -> None:
        """Refuse new calls and stop the workers: the jobs they held run again
        on whichever replica claims them once their leases expire."""
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self._pricing.stop()
        await self._completions.stop()

    # -- accepting -------------------------------------------------------------

    async def submit(
        self,
        order_req_id: str,
        proposal_id: str,
        proposal: ProposalQuote,
        *,
        request_id: str,
        fingerprint: str,
    ) -> bool:
        if self._stopped:
            raise ClosedError("processor")
        request = request_body(order_req_id, proposal_id, fingerprint)
        if request_id:
            seen = await self._logs.find(REQUESTS, request_id, "request")
            if seen is not None:
                if seen.body != request:
                    raise RequestConflictError(request_id)
                return True
        accepted = await self._logs.find(PROPOSALS, order_req_id, proposal_id)
        if accepted is None:
            await self._refuse_if_closed_or_full(order_req_id)
            handle = await self._pricer.submit(order_req_id, proposal_id, proposal)
            try:
                appended = await self._logs.append(
                    PROPOSALS,
                    order_req_id,
                    proposal_id,
                    {"handle": handle},
                    now=self._clock(),
                    limit=self._max_proposals,
                )
            except LogClosedError:
                raise _completed(order_req_id) from None
            except LogFullError:
                raise OrderFullError(order_req_id, self._max_proposals) from None
            except LogRemovedError:
                raise ExpiredError("order", order_req_id) from None
            duplicate = not appended.created
            handle = appended.entry.body["handle"]
        else:
            duplicate, handle = True, accepted.body["handle"]
        # Again on a repeat: the acceptance that wrote the proposal may have
        # stopped before its job.
        await self._ensure_pricing(order_req_id, proposal_id, handle)
        if request_id:
            await self._remember(request_id, request)
        return duplicate

    async def _refuse_if_closed_or_full(self, order_req_id: str) -> None:
        """Before the quote is sent, so that a refused proposal prices nothing;
        the append's own checks are what hold under concurrent calls."""
        events = await self._logs.head(EVENTS, order_req_id)
        if events is not None and events.removed_at is not None:
            raise ExpiredError("order", order_req_id)
        proposals = await self._logs.head(PROPOSALS, order_req_id)
        if (events is not None and events.closed_at is not None) or (
            proposals is not None and proposals.closed_at is not None
        ):
            raise _completed(order_req_id)
        if proposals is not None and proposals.last_seq >= self._max_proposals:
            raise OrderFullError(order_req_id, self._max_proposals)

    async def _ensure_pricing(self, order_req_id: str, proposal_id: str, handle: str) -> None:
        await self._jobs.submit([pricing_job(order_req_id, proposal_id, handle)], now=self._clock())

    async def _remember(self, request_id: str, request: dict[str, Any]) -> None:
        if not await remember_request(self._logs, request_id, request, now=self._clock()):
            # Another call took the id for something else in between.
            raise RequestConflictError(request_id)

    # -- completing ----------------------------------------------------------------

    async def complete(self, order_req_id: str) -> Event:
        if self._stopped:
            raise ClosedError("processor")
        with self._logs.watch(EVENTS, order_req_id) as changes:
            completed = await self._completion_of(order_req_id)
            if completed is not None:
                return completed
            now = self._clock()
            try:
                proposals = await self._logs.close_log(PROPOSALS, order_req_id, now=now)
            except LogRemovedError:
                raise ExpiredError("order", order_req_id) from None
            events = await self._logs.head(EVENTS, order_req_id)
            if (events.last_seq if events else 0) >= proposals.last_seq:
                # Every proposal has its event, and none can come now: no need to wait.
                return await self._append_completed(order_req_id)
            await self._jobs.submit([completion_job(order_req_id, now)], now=now)
            while (completed := await self._completion_of(order_req_id)) is None:
                await changes.next_within(None)
            return completed

    async def _completion_of(self, order_req_id: str) -> Event | None:
        head = await self._logs.head(EVENTS, order_req_id)
        if head is None or head.closed_at is None:
            if head is not None and head.removed_at is not None:
                raise ExpiredError("order", order_req_id)
            return None
        entry = await self._logs.find(EVENTS, order_req_id, COMPLETED_KEY)
        if entry is None:  # removed between the two reads
            raise ExpiredError("order", order_req_id)
        return event_of(entry)

    async def _append_completed(self, order_req_id: str) -> Event:
        try:
            appended = await self._logs.append(
                EVENTS,
                order_req_id,
                COMPLETED_KEY,
                completed_body(order_req_id),
                now=self._clock(),
                close=True,
            )
        except LogRemovedError:
            raise ExpiredError("order", order_req_id) from None
        return event_of(appended.entry)

    async def _finish(self, job: Job) -> Done:
        """A completion's job: settle every proposal without an event, then
        append ORDER_COMPLETED. Runs again from the start if its replica dies:
        each step is idempotent."""
        order_req_id: str = job.payload["order"]
        deadline = job.payload["requested_at"] + self._completion_wait
        proposals = await self._logs.read(
            PROPOSALS, order_req_id, after=0, limit=self._max_proposals
        )
        priced = {
            event.proposal_id
            for event in map(
                event_of,
                await self._logs.read(EVENTS, order_req_id, after=0, limit=len(proposals) + 1),
            )
        }
        pending = [entry for entry in proposals if entry.key not in priced]
        async with asyncio.TaskGroup() as settling:
            for entry in pending:
                handle = entry.body["handle"]
                await self._ensure_pricing(order_req_id, entry.key, handle)
                settling.create_task(self._settle(order_req_id, entry.key, handle, deadline))
        with contextlib.suppress(ExpiredError):
            await self._append_completed(order_req_id)
        return Done(None)

    async def _settle(
        self, order_req_id: str, proposal_id: str, handle: str, deadline: float
    ) -> None:
        """The proposal's outcome if it comes before its withdrawal: at once if
        its quote awaits a human review, at deadline otherwise; or nothing if
        its pricing job appends its event first."""
        in_review = asyncio.Event()
        pricing = asyncio.create_task(self._pricer.outcome(handle, in_review.set))
        reviewing = asyncio.create_task(in_review.wait())
        recorded = asyncio.create_task(self._until_recorded(order_req_id, proposal_id))
        waiting = {pricing, reviewing, recorded}
        try:
            await asyncio.wait(
                waiting,
                timeout=max(deadline - self._clock(), 0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        if recorded.done() and not recorded.cancelled():
            return
        if pricing.done() and not pricing.cancelled() and pricing.exception() is None:
            await self._record(order_req_id, proposal_id, pricing.result())
            return
        why = (
            "its quote was awaiting a human review"
            if in_review.is_set()
            else f"its quote was not priced within {self._completion_wait:g}s of that"
        )
        withdrawn: PricingOutcome[quote_pb.QueueMessage] = PricingOutcome(
            None, f"withdrawn: the order was completed while {why}; quote {handle} is cancelled"
        )
        if await self._record(order_req_id, proposal_id, withdrawn):
            try:
                await self._pricer.withdraw(handle)
            except Exception as error:
                log.warning(
                    "cancelling the quote %s of withdrawn proposal %s/%s failed: %s",
                    handle,
                    order_req_id,
                    proposal_id,
                    error,
                )

    # -- pricing -------------------------------------------------------------------

    async def _price(self, job: Job) -> Done:
        """A pricing job: follow the quote until it is final, or until the
        proposal's event is appended by its order's completion, and append the
        outcome as the proposal's event."""
        order_req_id: str = job.payload["order"]
        proposal_id: str = job.payload["proposal"]
        pricing = asyncio.create_task(self._outcome(job.payload["handle"]))
        recorded = asyncio.create_task(self._until_recorded(order_req_id, proposal_id))
        try:
            await asyncio.wait({pricing, recorded}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pricing.cancel()
            recorded.cancel()
            await asyncio.gather(pricing, recorded, return_exceptions=True)
        if pricing.done() and not pricing.cancelled():
            await self._record(order_req_id, proposal_id, pricing.result())
        return Done(None)

    async def _outcome(self, handle: str) -> PricingOutcome[quote_pb.QueueMessage]:
        try:
            return await self._pricer.outcome(handle, lambda: None)
        except Exception as error:
            log.exception("pricing quote %s failed", handle)
            return PricingOutcome(None, f"{type(error).__name__}: {error}")

    async def _until_recorded(self, order_req_id: str, proposal_id: str) -> None:
        with self._logs.watch(EVENTS, order_req_id) as changes:
            while await self._logs.find(EVENTS, order_req_id, proposal_key(proposal_id)) is None:
                await changes.next_within(None)

    async def _record(
        self, order_req_id: str, proposal_id: str, outcome: PricingOutcome[quote_pb.QueueMessage]
    ) -> bool:
        """Append the proposal's event, unless it has one; whether this did."""
        error = cut_error(outcome.error)
        try:
            appended = await self._logs.append(
                EVENTS,
                order_req_id,
                proposal_key(proposal_id),
                proposal_body(proposal_id, outcome.quote, error),
                now=self._clock(),
            )
        except (LogClosedError, LogRemovedError):
            # Completed or removed without it: only a removal can do that.
            return False
        return appended.created

    # -- watching --------------------------------------------------------------------

    async def watch(self, order_req_id: str, after_sequence: int) -> AsyncIterator[Event]:
        if after_sequence < 0:
            raise ValueError(f"after_sequence must not be negative; got {after_sequence}")
        with self._logs.watch(EVENTS, order_req_id) as changes:
            head = await self._logs.head(EVENTS, order_req_id)
            if head is not None and head.removed_at is not None:
                raise ExpiredError("order", order_req_id)
            last = head.last_seq if head is not None else 0
            if after_sequence > last:
                raise CursorOutOfRangeError("order", order_req_id, after_sequence, last)
            awaited = head is None and not await self.exists(order_req_id)
            if awaited:
                self._await(order_req_id)
            self._watchers += 1
            since = SharedReads.mark()
            try:
                cursor = after_sequence
                while True:
                    entries = await self._read_events(order_req_id, cursor, since)
                    if entries and awaited:
                        self._unawait(order_req_id)
                        awaited = False
                    for entry in entries:
                        event = event_of(entry)
                        cursor = event.sequence
                        yield event
                        if event.kind is OrderEventKind.ORDER_COMPLETED:
                            return
                    if entries:
                        continue
                    head = await self._heads.read(
                        order_req_id, since, lambda: self._logs.head(EVENTS, order_req_id)
                    )
                    if (head is None and cursor > 0) or (head and head.removed_at is not None):
                        raise ExpiredError("order", order_req_id)
                    await changes.next_within(None)
                    # What that change announced is committed: read after it.
                    since = SharedReads.mark()
            finally:
                self._watchers -= 1
                if awaited:
                    self._unawait(order_req_id)

    def _read_events(self, order_req_id: str, cursor: int, since: int) -> Awaitable[list[LogEntry]]:
        return self._entries.read(
            (order_req_id, cursor),
            since,
            lambda: self._logs.read(EVENTS, order_req_id, after=cursor, limit=_READ_BATCH),
        )

    def _await(self, order_req_id: str) -> None:
        if order_req_id not in self._awaited and len(self._awaited) >= self._max_awaited:
            raise WatchLimitError(self._max_awaited, AWAITED_RETRY_AFTER)
        self._awaited[order_req_id] = self._awaited.get(order_req_id, 0) + 1

    def _unawait(self, order_req_id: str) -> None:
        left = self._awaited[order_req_id] - 1
        if left:
            self._awaited[order_req_id] = left
        else:
            del self._awaited[order_req_id]

    @property
    def watchers_count(self) -> int:
        return self._watchers

    async def exists(self, order_req_id: str) -> bool:
        head = await self._logs.head(PROPOSALS, order_req_id)
        return head is not None and head.removed_at is None

    # -- counting and removing ---------------------------------------------------------

    async def stats(self, busiest: int) -> ProcessorStats:
        events = await self._logs.totals(EVENTS, busiest=busiest)
        proposals = await self._logs.totals(PROPOSALS, busiest=0)
        pricing = await self._jobs.stats(PRICING)
        return ProcessorStats(
            orders=proposals.logs,
            events=events.entries,
            busiest=events.busiest,
            watchers=self._watchers,
            in_flight=pricing.count(JobState.AVAILABLE) + pricing.count(JobState.RUNNING),
            awaited=len(self._awaited),
        )

    async def remove(self, order_req_id: str) -> bool:
        existed = await self.exists(order_req_id) or (
            await self._logs.head(EVENTS, order_req_id) is not None
        )
        if self._tombstone_retention > 0:
            # A tombstone needs a head, which an order with no event yet lacks.
            with contextlib.suppress(LogRemovedError):
                await self._logs.close_log(EVENTS, order_req_id, now=self._clock())
        await self._remove([order_req_id])
        return existed

    async def sweep_expired(self) -> int:
        """Remove the orders completed retention seconds ago or more, with their
        proposals, request ids and finished jobs, and forget the tombstones
        older than tombstone_retention; answers how many orders went. Any
        replica may sweep; the periodic sweep runs on one per interval."""
        now = self._clock()
        cutoff = now - self._completed_retention
        removed = 0
        while names := await self._logs.closed_before(EVENTS, cutoff, limit=_SWEEP_BATCH):
            removed += await self._remove(names)
        for queue in (PRICING, COMPLETIONS):
            while await self._jobs.sweep(queue, finished_before=cutoff, limit=_SWEEP_BATCH):
                pass
        while await self._logs.forget_removed(
            EVENTS, now - self._tombstone_retention, limit=_SWEEP_BATCH
        ):
            pass
        return removed

    async def _remove(self, names: list[str]) -> int:
        now = self._clock()
        request_ids = [key for name in names for key in await self._request_ids(name)]
        # Events first: an order whose proposals are gone (exists() is False)
        # is then already gone for its watchers too.
        had_events = await self._logs.remove(
            EVENTS, names, now=now, tombstone=self._tombstone_retention > 0
        )
        await self._logs.remove(REQUESTS, request_ids, now=now, tombstone=False)
        await self._logs.remove(ORDER_REQUESTS, names, now=now, tombstone=False)
        had_proposals = await self._logs.remove(PROPOSALS, names, now=now, tombstone=False)
        return max(had_proposals, had_events)

    async def _request_ids(self, order_req_id: str) -> list[str]:
        keys: list[str] = []
        while entries := await self._logs.read(
            ORDER_REQUESTS, order_req_id, after=len(keys), limit=_SWEEP_BATCH
        ):
            keys.extend(entry.key for entry in entries)
        return keys


def pricing_job(order_req_id: str, proposal_id: str, handle: str) -> NewJob:
    """The job pricing an accepted proposal: one per proposal, however often submitted."""
    return NewJob(
        queue=PRICING,
        payload={"order": order_req_id, "proposal": proposal_id, "handle": handle},
        priority=0,
        max_attempts=_ATTEMPTS,
        request_id=json.dumps([order_req_id, proposal_id]),
        fingerprint=handle,
    )


def completion_job(order_req_id: str, requested_at: float) -> NewJob:
    """The job completing an order once its proposals are settled; one per order."""
    return NewJob(
        queue=COMPLETIONS,
        payload={"order": order_req_id, "requested_at": requested_at},
        priority=0,
        max_attempts=_ATTEMPTS,
        request_id=order_req_id,
    )


def request_body(order_req_id: str, proposal_id: str, fingerprint: str) -> dict[str, Any]:
    """What a request id was first used for; equal only for the same request."""
    return {"order": order_req_id, "proposal": proposal_id, "fingerprint": fingerprint}


async def remember_request(
    logs: LogStore, request_id: str, request: dict[str, Any], *, now: float
) -> bool:
    """Keep what request_id was used for, with its order (so that the sweep
    removes it with the order); False if it was first used for another request."""
    await logs.append(ORDER_REQUESTS, request["order"], request_id, None, now=now)
    appended = await logs.append(REQUESTS, request_id, "request", request, now=now)
    return bool(appended.entry.body == request)


def _logging_failures(
    handler: Callable[[Job], Awaitable[Done]],
) -> Callable[[Job], Awaitable[Done]]:
    """The handler, logging what it raises: a failed attempt of these jobs is
    a store's failure or a bug, retried by the worker but never silent."""

    async def logged(job: Job) -> Done:
        try:
            return await handler(job)
        except Exception:
            log.exception("attempt %d of %s job %s failed", job.attempt, job.queue, job.id)
            raise

    return logged


def _completed(order_req_id: str) -> InvalidStateError:
    return InvalidStateError("order", order_req_id, "completed", "submit a proposal to")
