"""Pricing a proposal through the QuoteService's generated stub.

The quote is submitted (with those submitted at once, as one
BatchSubmitQuotes: quote_batches.py) with a request_id derived from (order,
proposal), so a retried submission can never queue the same proposal twice.
The id is an HMAC
of the pair under the deployment's secret (request_id_key): unambiguous for any
characters the ids hold, and unknown to clients, who share the quote service's
request id namespace and so cannot take a proposal's id in advance. It never
appears in an error this service answers. Its outcome is
followed with WatchMessage; if the quote service goes away meanwhile, the
watch is reopened with backoff until the pricing timeout.
"""

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from processor_svc.pricing import PricingOutcome
from processor_svc.quote_batches import QuoteBatches
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import DownstreamError, ForwardedError, rich_status

_FINAL = frozenset(
    {
        quote_pb.MESSAGE_STATUS_COMPLETED,
        quote_pb.MESSAGE_STATUS_FAILED,
        quote_pb.MESSAGE_STATUS_CANCELLED,
        quote_pb.MESSAGE_STATUS_REJECTED,
    }
)
# Seconds between attempts to reach a quote service that went away, doubling to the cap.
_RECONNECT_BASE = 0.05
_RECONNECT_CAP = 2.0


@dataclass(frozen=True, slots=True)
class ProposalQuote:
    """What SubmitProposal asks to have priced."""

    submission: quote_pb.Submission
    use_agentic: bool = False
    #: As asked for: "" prices it under the order's id.
    fairness_key: str = ""

    def fingerprint(self) -> str:
        """Equal for equal requests, to tell a repeat from a different request;
        short and JSON-able, since it is kept with the request id."""
        digest = hashlib.sha256(self.submission.SerializeToString(deterministic=True))
        # The key only when given, so the fingerprints kept before there were
        # keys still match their repeats.
        key = f":{self.fairness_key}" if self.fairness_key else ""
        return f"{digest.hexdigest()}:{int(self.use_agentic)}{key}"


def proposal_request_id(key: bytes, order_req_id: str, proposal_id: str) -> str:
    """A request_id unique to (order, proposal) and unguessable without key: 73
    characters, within the quote service's 128."""
    # JSON, unlike a separator, cannot make two different pairs one text.
    pair = json.dumps([order_req_id, proposal_id]).encode()
    return f"proposal-{hmac.new(key, pair, hashlib.sha256).hexdigest()}"


class QuotePricer:
    def __init__(self, quote: Downstream, *, pricing_timeout: float, request_id_key: bytes) -> None:
        self._quote = quote
        self._stub = quote_grpc.QuoteServiceStub(quote.channel)
        self._batches = QuoteBatches(quote, self._stub)
        self._pricing_timeout = pricing_timeout
        self._key = request_id_key

    async def submit(self, order_req_id: str, proposal_id: str, proposal: ProposalQuote) -> str:
        request = quote_pb.SubmitQuoteRequest(
            submission=proposal.submission,
            use_agentic=proposal.use_agentic,
            request_id=proposal_request_id(self._key, order_req_id, proposal_id),
            fairness_key=proposal.fairness_key or order_req_id,
        )
        try:
            response = await self._batches.submit(request)
        except ForwardedError as error:
            if error.status.code is grpc.StatusCode.ALREADY_EXISTS:
                raise _already_priced(self._quote.label, order_req_id, proposal_id) from None
            raise
        return response.message.id

    async def outcome(
        self, handle: str, in_review: Callable[[], None]
    ) -> PricingOutcome[quote_pb.QueueMessage]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._pricing_timeout
        delay = _RECONNECT_BASE
        request = quote_pb.WatchMessageRequest(id=handle)
        while (remaining := deadline - loop.time()) > 0:
            try:
                async for response in self._quote.stream(
                    self._stub.WatchMessage, request, max_seconds=remaining
                ):
                    if response.message.status in _FINAL:
                        return _outcome(response.message)
                    if response.message.status == quote_pb.MESSAGE_STATUS_AWAITING_REVIEW:
                        in_review()
            except DownstreamError as error:
                if error.downstream_code is not grpc.StatusCode.UNAVAILABLE:
                    return PricingOutcome(None, str(error))
                await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
                delay = min(delay * 2, _RECONNECT_CAP)
        return PricingOutcome(
            None, f"quote {handle} was not final within {self._pricing_timeout:g}s"
        )

    async def withdraw(self, handle: str) -> None:
        """Cancel the quote: a quote already final answers FAILED_PRECONDITION,
        which needs nothing more."""
        request = quote_pb.CancelMessageRequest(id=handle)
        try:
            await self._quote.call(self._stub.CancelMessage, request)
        except ForwardedError as error:
            if error.status.code is not grpc.StatusCode.FAILED_PRECONDITION:
                raise


def _already_priced(downstream: str, order_req_id: str, proposal_id: str) -> ForwardedError:
    """The quote service's refusal of the derived request id, told without the id:
    it holds a quote for the same (order, proposal) with another submission, sent
    by an acceptance that never committed (the process stopped) or for an earlier
    order of the same id, removed since."""
    return ForwardedError(
        downstream,
        rich_status(
            grpc.StatusCode.ALREADY_EXISTS,
            f"proposal {proposal_id!r} of order {order_req_id!r} was sent to the quote "
            "service before with another submission (by a request that was not answered, "
            "or for an earlier order of this id that has been removed); use a new proposal id",
            reason="PROPOSAL_PRICED_BEFORE",
            metadata={"orderReqId": order_req_id, "proposalId": proposal_id},
        ),
    )


def _outcome(message: quote_pb.QueueMessage) -> PricingOutcome[quote_pb.QueueMessage]:
    if message.status == quote_pb.MESSAGE_STATUS_COMPLETED:
        return PricingOutcome(message)
    status = quote_pb.MessageStatus.Name(message.status).removeprefix("MESSAGE_STATUS_")
    why = f": {message.error_message}" if message.error_message else ""
    return PricingOutcome(None, f"quote {message.id} ended {status}{why}")
