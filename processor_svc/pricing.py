"""What pricing a proposal means to the processor: the pricer it calls (the
quote service, quote_pricer.py), how a pricing ends, and the bounds on an
order's proposals and on what a failed one keeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from queues.errors import InvalidStateError

Q = TypeVar("Q")
# A pricer that takes any submission takes the processor's kind of submission too.
S_contra = TypeVar("S_contra", contravariant=True)

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
        if it could not; the caller only logs that."""


def cut_error(error: str) -> str:
    """error, cut to ERROR_MAX_CHARS."""
    return error if len(error) <= ERROR_MAX_CHARS else error[: ERROR_MAX_CHARS - 1] + "…"
