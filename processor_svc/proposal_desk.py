"""Proposals in, order events out: the processor's logic, plain asyncio.

A proposal is accepted once the pricer has queued its quote. Its pricing then
runs in the background, and its outcome is appended to the order's log as
"<proposal_id>/New" (priced) or "<proposal_id>/Failed". The same (order,
proposal) accepted twice prices once. Completing an order waits for every
proposal accepted before it, so the order-completed event is always last and
no watcher misses a proposal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from queues.errors import ClosedError, InvalidStateError, RequestConflictError
from queues.order_queues import OrderEvent, OrderEventKind, OrderQueueManager

log = logging.getLogger(__name__)

S = TypeVar("S")
Q = TypeVar("Q")


@dataclass(frozen=True, slots=True)
class PricingOutcome(Generic[Q]):
    """How a proposal's pricing ended: a quote, or why there is none."""

    quote: Q | None
    error: str = ""


class Pricer(Protocol[S, Q]):
    async def submit(self, order_req_id: str, proposal_id: str, submission: S) -> str:
        """Queue the proposal's quote; returns a handle for outcome(). Raises if
        the quote could not be queued, in which case nothing was accepted."""

    async def outcome(self, handle: str) -> PricingOutcome[Q]:
        """Wait for the quote behind handle to be final."""


@dataclass
class _Order:
    proposals: set[str] = field(default_factory=set)
    #: request_id → what it was first used for.
    requests: dict[str, Hashable] = field(default_factory=dict)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    completing: bool = False


class ProposalDesk(Generic[S, Q]):
    def __init__(self, orders: OrderQueueManager[Q], pricer: Pricer[S, Q]) -> None:
        self._orders = orders
        self._pricer = pricer
        self._open: dict[str, _Order] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Proposals accepted whose outcome is not yet in their order's log."""
        return len(self._tasks)

    async def submit(
        self,
        order_req_id: str,
        proposal_id: str,
        submission: S,
        *,
        request_id: str = "",
        fingerprint: Hashable = None,
    ) -> bool:
        """Accept a proposal; returns True if it had been accepted before.

        Raises InvalidStateError for a completed (or completing) order,
        RequestConflictError for a request_id reused for another proposal, and
        whatever the pricer raises when it cannot queue the quote, in which case
        nothing is accepted and the same proposal may be submitted again.
        """
        if self._closed:
            raise ClosedError("processor")
        order = self._order(order_req_id)
        key = (order_req_id, proposal_id, fingerprint)
        if request_id and order.requests.setdefault(request_id, key) != key:
            raise RequestConflictError(request_id)
        if proposal_id in order.proposals:
            return True
        order.proposals.add(proposal_id)
        order.in_flight += 1
        order.idle.clear()
        try:
            handle = await self._pricer.submit(order_req_id, proposal_id, submission)
        except BaseException:
            order.proposals.discard(proposal_id)
            if request_id:
                order.requests.pop(request_id, None)
            self._settled(order_req_id, order)
            raise
        task = asyncio.create_task(self._price(order_req_id, proposal_id, handle, order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return False

    async def complete(self, order_req_id: str) -> OrderEvent[Q]:
        """Append the order-completed event once every accepted proposal has its
        event, and return it; completing again returns the same event."""
        queue = self._orders.get_order_queue(order_req_id)
        if queue.completion is not None:
            return queue.completion
        order = self._order(order_req_id)
        order.completing = True
        if order.in_flight:
            await order.idle.wait()
        self._open.pop(order_req_id, None)
        return self._orders.complete_order(order_req_id)

    async def close(self) -> None:
        """Refuse new proposals and stop pricing those in flight."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _order(self, order_req_id: str) -> _Order:
        queue = self._orders.get_order_queue(order_req_id)
        order = self._open.get(order_req_id)
        if queue.completion is not None or (order is not None and order.completing):
            raise InvalidStateError("order", order_req_id, "completed", "submit a proposal to")
        if order is None:
            order = self._open[order_req_id] = _Order()
        return order

    async def _price(self, order_req_id: str, proposal_id: str, handle: str, order: _Order) -> None:
        try:
            outcome = await self._pricer.outcome(handle)
        except Exception as error:
            log.exception("pricing proposal %s/%s failed", order_req_id, proposal_id)
            outcome = PricingOutcome(None, f"{type(error).__name__}: {error}")
        try:
            if outcome.quote is not None:
                await self._orders.add_to_order_queue(
                    order_req_id, f"{proposal_id}/New", proposal_id=proposal_id, data=outcome.quote
                )
            else:
                await self._orders.add_to_order_queue(
                    order_req_id,
                    f"{proposal_id}/Failed",
                    kind=OrderEventKind.PROPOSAL_FAILED,
                    proposal_id=proposal_id,
                    error=outcome.error,
                )
        finally:
            self._settled(order_req_id, order)

    @staticmethod
    def _settled(order_req_id: str, order: _Order) -> None:
        order.in_flight -= 1
        if order.in_flight == 0:
            order.idle.set()
