"""Proposals in, order events out: the processor's logic, plain asyncio.

A proposal is accepted once the pricer has queued its quote and the proposal's
record (proposal_records) is committed to the order queues' store; only then
does submit() return. Its pricing then runs in the background, and its outcome
is appended to the order's log as "<proposal_id>/New" (priced) or
"<proposal_id>/Failed". The same (order, proposal) accepted twice prices once.

Completing an order refuses new proposals at once, and appends the
order-completed event once every proposal accepted before has its event, so
that event is always last and no watcher misses a proposal. It answers
promptly even when a proposal's quote waits for a human: proposals whose quote
awaits review are withdrawn at once, and those still being priced
automatically are waited for up to completion_wait seconds, then withdrawn
too. A withdrawn proposal's event is "<proposal_id>/Failed" with an error
saying so, and its quote is cancelled in the background (best effort). Every
accepted proposal still gets exactly one event. A completion that has to wait
is committed first (completion_records), so a restart finishes it.

Recovery: start() rebuilds the accepted proposals and request ids from the
store. An accepted proposal whose order's log has no event for it was being
priced when the process stopped, so its pricing restarts from its handle: every
accepted proposal gets exactly one event, whenever the process stops. A
completed order has none such, since completion waited for them all. A
completion asked for before the stop goes on, its wait counted from when it
was asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from processor_svc.completion_records import (
    COMPLETIONS,
    completion_delete,
    completion_from_record,
    completion_put,
)
from processor_svc.proposal_records import (
    PROPOSALS,
    REQUESTS,
    Request,
    order_deletes,
    proposal_from_record,
    proposal_key,
    proposal_put,
    request_from_record,
    request_put,
)
from queues.backoff import Backoff
from queues.errors import ClosedError, InvalidStateError, RequestConflictError
from queues.keyed_lock import KeyedLock
from queues.order_queues import OrderEvent, OrderEventKind, OrderQueueManager
from queues.records import load_records
from queues.shielded import ShieldedSteps
from queues.storage import Delete, StoreError

log = logging.getLogger(__name__)

S = TypeVar("S")
Q = TypeVar("Q")
R = TypeVar("R")
# A pricer that takes any submission takes the desk's kind of submission too.
S_contra = TypeVar("S_contra", contravariant=True)

#: How long to wait before writing an outcome again after the store refused it.
STORE_RETRY = Backoff(base=0.1, cap=5.0)
#: The most proposals an order takes, by default. Every event of an order
#: reaches a requestor's GetTaskResult in one response, which must stay under
#: gRPC's default 4 MiB: a priced proposal's event is at most about 17 KB (ids
#: and names of the longest, in 4-byte characters, a 2,000-character review
#: note), so 200 of them make about 3.3 MB.
MAX_PROPOSALS_PER_ORDER = 200
#: The longest PROPOSAL_FAILED error kept, in characters; longer ones are cut.
ERROR_MAX_CHARS = 1000
#: Seconds a completion waits, by default, for proposals being priced
#: automatically before it withdraws them: within a client's usual 10 s deadline.
COMPLETION_WAIT = 5.0


class OrderFullError(InvalidStateError):
    """The order holds as many proposals as an order may: FAILED_PRECONDITION,
    since retrying never helps (an order's proposals never leave it), unlike
    RESOURCE_EXHAUSTED's "later"; the caller needs another order."""

    def __init__(self, order_req_id: str, limit: int) -> None:
        super().__init__("order", order_req_id, "full", "submit a proposal to")
        # The limit belongs in the words; the rest is InvalidStateError's.
        self.args = (f"{self}: it holds {limit} proposals, the most an order may hold",)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class PricingOutcome(Generic[Q]):
    """How a proposal's pricing ended: a quote, or why there is none."""

    quote: Q | None
    error: str = ""


class Pricer(Protocol[S_contra, Q]):
    async def submit(self, order_req_id: str, proposal_id: str, submission: S_contra) -> str:
        """Queue the proposal's quote; returns a handle for outcome(). Raises if
        the quote could not be queued, in which case nothing was accepted."""

    async def outcome(self, handle: str, in_review: Callable[[], None]) -> PricingOutcome[Q]:
        """Wait for the quote behind handle to be final, calling in_review()
        (once or more) while it waits for a human decision. A handle from an
        earlier run of the process must work too."""

    async def withdraw(self, handle: str) -> None:
        """Cancel the quote behind handle: its proposal was withdrawn. Raises
        if it could not; the desk only logs that."""


@dataclass
class _Order(Generic[Q]):
    #: proposal_id → the handle of its pricing, for every accepted proposal.
    proposals: dict[str, str] = field(default_factory=dict)
    #: The request ids first used on this order, deleted with it.
    request_ids: set[str] = field(default_factory=set)
    #: Proposals being accepted or priced: their event is not yet appended.
    in_flight: int = 0
    #: Proposals being accepted: they count towards the order's limit.
    accepting: int = 0
    #: Proposals being priced whose quote waits for a human decision.
    in_review: set[str] = field(default_factory=set)
    #: Set, and replaced, whenever in_flight or in_review changes.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: The completion under way, shared by every complete() call; new
    #: proposals are refused while it is set.
    completing: asyncio.Task[OrderEvent[Q]] | None = None
    #: Set once the completion stops waiting: proposals without an event are withdrawn.
    withdraw: asyncio.Event = field(default_factory=asyncio.Event)


class ProposalDesk(Generic[S, Q]):
    """Keeps its records in orders.store, so that removing an order's log
    deletes the order's proposals and request ids in the same commit."""

    def __init__(
        self,
        orders: OrderQueueManager[Q],
        pricer: Pricer[S, Q],
        *,
        store_retry: Backoff = STORE_RETRY,
        max_proposals: int = MAX_PROPOSALS_PER_ORDER,
        completion_wait: float = COMPLETION_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._orders = orders
        self._max_proposals = max_proposals
        self._completion_wait = completion_wait
        self._clock = clock
        self._store = orders.store
        self._pricer = pricer
        self._store_retry = store_retry
        self._state: dict[str, _Order[Q]] = {}
        self._requests: dict[str, Request] = {}
        self._request_locks = KeyedLock()
        self._proposal_locks = KeyedLock()
        self._accepting = ShieldedSteps()
        self._pricing: set[asyncio.Task[None]] = set()
        # Completions and quote cancellations under way, cancelled by stop().
        self._background: set[asyncio.Task[object]] = set()
        self._stopped = False
        orders.add_removal_listener(self)

    @property
    def in_flight(self) -> int:
        """Proposals accepted whose outcome is not yet in their order's log."""
        return len(self._pricing)

    async def start(self) -> None:
        """Rebuild the accepted proposals and request ids from the store, and
        restart the pricing of each accepted proposal that has no event yet.
        Call it after the order manager's start(). Raises StoreError if the
        store cannot be read."""
        for order_req_id, proposal_id, handle in await load_records(
            self._store, PROPOSALS, proposal_from_record
        ):
            self._order(order_req_id).proposals[proposal_id] = handle
        for request_id, request in await load_records(
            self._store, REQUESTS, lambda key, record: (key, request_from_record(record))
        ):
            self._remember(request_id, request)
        for order_req_id, order in self._state.items():
            queue = self._orders.get_order_queue(order_req_id)
            if queue.completion is not None:
                continue
            priced = {event.proposal_id for event in queue.events_after(0)}
            for proposal_id, handle in order.proposals.items():
                if proposal_id not in priced:
                    self._begin(order)
                    self._spawn_pricing(order_req_id, proposal_id, handle, order)
        for order_req_id, requested_at in await load_records(
            self._store, COMPLETIONS, completion_from_record
        ):
            done = self._orders.find_order_queue(order_req_id)
            if done is None or done.completion is None:
                order = self._order(order_req_id)
                order.completing = self._spawn(self._finish_completion(order_req_id, requested_at))

    async def submit(
        self,
        order_req_id: str,
        proposal_id: str,
        submission: S,
        *,
        request_id: str = "",
        fingerprint: str = "",
    ) -> bool:
        """Accept a proposal; returns True if it had been accepted before (a
        repeat, which prices nothing), False once its acceptance is committed.

        A request_id repeated with the same (order, proposal, fingerprint) is a
        repeat, answered True even once the order is completed. Raises
        ClosedError after stop(), InvalidStateError for a new proposal to a
        completed (or completing) order, OrderFullError (an InvalidStateError)
        for one past the order's max_proposals, ExpiredError for an order
        removed after its retention, RequestConflictError for a request_id
        first used for something else, StoreError if the acceptance could not
        be committed, and whatever the pricer raises when it cannot queue the
        quote; after any of these nothing is accepted and the same proposal
        may be submitted again. Cancelling the caller does not stop an
        acceptance under way.
        """
        if self._stopped:
            raise ClosedError("processor")
        request = Request(order_req_id, proposal_id, fingerprint) if request_id else None
        return await self._accepting.run(
            self._accept(order_req_id, proposal_id, submission, request_id, request)
        )

    async def complete(self, order_req_id: str) -> OrderEvent[Q]:
        """Append the order-completed event once every accepted proposal has its
        event, and return it once committed; completing again returns the same
        event. New proposals to the order are refused from the first call on.

        Proposals without an event yet are withdrawn (each gets a failed event)
        at once if their quote awaits a human review, and after completion_wait
        seconds if it is still being priced. A completion that has to wait is
        committed first, and goes on when the caller is cancelled and after a
        restart. Raises ExpiredError for an order removed after its retention,
        ClosedError after stop(), and StoreError if the completion could not be
        committed: the order stays open."""
        queue = self._orders.find_order_queue(order_req_id)
        if queue is not None and queue.completion is not None:
            return queue.completion
        self._orders.refuse_if_expired(order_req_id)
        if self._stopped:
            raise ClosedError("processor")
        order = self._order(order_req_id)
        if order.completing is None:
            order.completing = self._spawn(self._completion(order_req_id, order))
        return await asyncio.shield(order.completing)

    async def stop(self) -> None:
        """Refuse new proposals, let the acceptances under way finish, and stop
        pricing. Proposals left unpriced stay accepted in the store: the next
        start() prices them."""
        self._stopped = True
        await self._accepting.wait()
        stopping = [*self._pricing, *self._background]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    # -- the order manager's removal listener ------------------------------------

    def removal_changes(self, order_req_id: str) -> list[Delete]:
        """Deletes of the order's proposal, request id and completion records."""
        order = self._state.get(order_req_id)
        if order is None:
            return []
        return [
            *order_deletes(order_req_id, order.proposals, order.request_ids),
            completion_delete(order_req_id),
        ]

    def order_removed(self, order_req_id: str) -> None:
        order = self._state.pop(order_req_id, None)
        if order is not None:
            for request_id in order.request_ids:
                self._requests.pop(request_id, None)

    # -- accepting -----------------------------------------------------------------

    async def _accept(
        self,
        order_req_id: str,
        proposal_id: str,
        submission: S,
        request_id: str,
        request: Request | None,
    ) -> bool:
        async with contextlib.AsyncExitStack() as locks:
            # Always the request id's lock before the proposal's: no two
            # acceptances can wait on each other.
            if request is not None:
                await locks.enter_async_context(self._request_locks.hold(request_id))
            key = proposal_key(order_req_id, proposal_id)
            await locks.enter_async_context(self._proposal_locks.hold(key))
            if request is not None and request_id in self._requests:
                if self._requests[request_id] != request:
                    raise RequestConflictError(request_id)
                return True
            new_request = [] if request is None else [request_put(request_id, request)]
            order = self._state.get(order_req_id)
            if order is not None and proposal_id in order.proposals:
                if new_request:
                    # A repeat under a request id not seen before: keep the id, so
                    # its own repeats are answered alike and its reuse is refused.
                    await self._store.commit(new_request)
                    self._remember(request_id, request)
                return True
            self._orders.refuse_if_expired(order_req_id)
            queue = self._orders.find_order_queue(order_req_id)
            completed = queue is not None and queue.completion is not None
            if completed or (order is not None and order.completing is not None):
                raise InvalidStateError("order", order_req_id, "completed", "submit a proposal to")
            order = self._order(order_req_id)
            if len(order.proposals) + order.accepting >= self._max_proposals:
                raise OrderFullError(order_req_id, self._max_proposals)
            self._begin(order)
            order.accepting += 1
            try:
                handle = await self._pricer.submit(order_req_id, proposal_id, submission)
                await self._store.commit(
                    [proposal_put(order_req_id, proposal_id, handle), *new_request]
                )
            except BaseException:
                self._settled(order)
                self._forget_if_unused(order_req_id, order)
                raise
            finally:
                order.accepting -= 1
            # An order with an accepted proposal exists, before its first event too.
            self._orders.get_order_queue(order_req_id)
            order.proposals[proposal_id] = handle
            self._remember(request_id, request)
            self._spawn_pricing(order_req_id, proposal_id, handle, order)
            return False

    def _order(self, order_req_id: str) -> _Order[Q]:
        order = self._state.get(order_req_id)
        if order is None:
            order = self._state[order_req_id] = _Order()
        return order

    def _forget_if_unused(self, order_req_id: str, order: _Order[Q]) -> None:
        """Drop an order a refused call created: nothing of it was accepted."""
        unused = not (order.proposals or order.request_ids or order.in_flight or order.completing)
        if unused and not self._orders.has_order_queue(order_req_id):
            self._state.pop(order_req_id, None)

    def _remember(self, request_id: str, request: Request | None) -> None:
        if request is not None:
            self._requests[request_id] = request
            self._order(request.order_req_id).request_ids.add(request_id)

    # -- completing ------------------------------------------------------------------

    async def _completion(self, order_req_id: str, order: _Order[Q]) -> OrderEvent[Q]:
        """Complete at once if nothing is in flight; otherwise commit the
        request, then finish it. A failure before the request is committed
        leaves the order open."""
        try:
            if not order.in_flight:
                return await self._orders.complete_order(order_req_id)
            requested_at = self._clock()
            await self._store.commit([completion_put(order_req_id, requested_at)])
        except BaseException:
            order.completing = None
            self._forget_if_unused(order_req_id, order)
            raise
        return await self._finish_completion(order_req_id, requested_at)

    async def _finish_completion(self, order_req_id: str, requested_at: float) -> OrderEvent[Q]:
        """Wait for the proposals in flight, withdrawing them once only those
        in review remain or completion_wait has passed since requested_at, then
        append the order-completed event, retrying while the store refuses it:
        the completion is committed, so it must happen."""
        order = self._order(order_req_id)
        remaining = requested_at + self._completion_wait - self._clock()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(remaining, 0)):
                await self._until(order, lambda: order.in_flight <= len(order.in_review))
        order.withdraw.set()
        await self._until(order, lambda: not order.in_flight)
        attempt = 0
        while True:
            try:
                return await self._orders.complete_order(order_req_id)
            except StoreError:
                attempt += 1
                log.exception("completing order %s failed; retrying", order_req_id)
                await asyncio.sleep(self._store_retry.delay(attempt))

    @staticmethod
    async def _until(order: _Order[Q], condition: Callable[[], bool]) -> None:
        while not condition():
            await order.changed.wait()

    def _spawn(self, work: Coroutine[object, object, R]) -> asyncio.Task[R]:
        """Run work in the background, to be cancelled by stop()."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- pricing -------------------------------------------------------------------

    @staticmethod
    def _begin(order: _Order[Q]) -> None:
        order.in_flight += 1

    @staticmethod
    def _changed(order: _Order[Q]) -> None:
        order.changed.set()
        order.changed = asyncio.Event()

    def _settled(self, order: _Order[Q]) -> None:
        order.in_flight -= 1
        self._changed(order)

    def _spawn_pricing(
        self, order_req_id: str, proposal_id: str, handle: str, order: _Order[Q]
    ) -> None:
        task = asyncio.create_task(
            self._price(order_req_id, proposal_id, handle, order),
            name=f"price {order_req_id}/{proposal_id}",
        )
        self._pricing.add(task)
        task.add_done_callback(self._pricing.discard)

    async def _price(
        self, order_req_id: str, proposal_id: str, handle: str, order: _Order[Q]
    ) -> None:
        try:
            try:
                outcome = await self._outcome_unless_withdrawn(proposal_id, handle, order)
            except Exception as error:
                log.exception("pricing proposal %s/%s failed", order_req_id, proposal_id)
                outcome = PricingOutcome(None, f"{type(error).__name__}: {error}")
            if outcome is None:
                outcome = self._withdrawn(order_req_id, proposal_id, handle, order)
            await self._record(order_req_id, proposal_id, outcome)
        finally:
            order.in_review.discard(proposal_id)
            self._settled(order)

    async def _outcome_unless_withdrawn(
        self, proposal_id: str, handle: str, order: _Order[Q]
    ) -> PricingOutcome[Q] | None:
        """The pricing's outcome, or None if the order's completion withdraws
        the proposal first."""
        if order.withdraw.is_set():
            return None

        def in_review() -> None:
            if proposal_id not in order.in_review:
                order.in_review.add(proposal_id)
                self._changed(order)

        pricing = asyncio.ensure_future(self._pricer.outcome(handle, in_review))
        withdrawal = asyncio.ensure_future(order.withdraw.wait())
        try:
            await asyncio.wait((pricing, withdrawal), return_when=asyncio.FIRST_COMPLETED)
        finally:
            withdrawal.cancel()
            pricing.cancel()
        # An outcome that came with the withdrawal still counts.
        return pricing.result() if pricing.done() and not pricing.cancelled() else None

    def _withdrawn(
        self, order_req_id: str, proposal_id: str, handle: str, order: _Order[Q]
    ) -> PricingOutcome[Q]:
        """The failed outcome of a proposal its order's completion withdrew;
        cancels its quote in the background."""
        self._spawn(self._cancel_quote(order_req_id, proposal_id, handle))
        if proposal_id in order.in_review:
            why = "its quote was awaiting a human review"
        else:
            why = f"its quote was not priced within {self._completion_wait:g}s of that"
        return PricingOutcome(
            None, f"withdrawn: the order was completed while {why}; quote {handle} is cancelled"
        )

    async def _cancel_quote(self, order_req_id: str, proposal_id: str, handle: str) -> None:
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

    async def _record(
        self, order_req_id: str, proposal_id: str, outcome: PricingOutcome[Q]
    ) -> None:
        """Append the outcome's event, retrying while the store refuses it: the
        proposal is accepted, and its order cannot complete before its event."""
        attempt = 0
        while True:
            try:
                if outcome.quote is not None:
                    await self._orders.add_to_order_queue(
                        order_req_id,
                        f"{proposal_id}/New",
                        proposal_id=proposal_id,
                        data=outcome.quote,
                    )
                else:
                    await self._orders.add_to_order_queue(
                        order_req_id,
                        f"{proposal_id}/Failed",
                        kind=OrderEventKind.PROPOSAL_FAILED,
                        proposal_id=proposal_id,
                        error=_bounded(outcome.error),
                    )
                return
            except StoreError:
                attempt += 1
                log.exception(
                    "recording proposal %s/%s failed; retrying", order_req_id, proposal_id
                )
                await asyncio.sleep(self._store_retry.delay(attempt))


def _bounded(error: str) -> str:
    if len(error) <= ERROR_MAX_CHARS:
        return error
    return error[: ERROR_MAX_CHARS - 1] + "…"
