"""Pricing a proposal through the QuoteService's generated stub.

The quote is submitted with a request_id derived from (order, proposal), so a
retried submission can never queue the same proposal twice. Its outcome is
followed with WatchMessage; if the quote service goes away meanwhile, the
watch is reopened with backoff until the pricing timeout.
"""

import asyncio
import hashlib
from dataclasses import dataclass

import grpc

from processor_svc.proposal_desk import PricingOutcome
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import DownstreamError

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

    def fingerprint(self) -> str:
        """Equal for equal requests, to tell a repeat from a different request;
        short and JSON-able, since it is kept with the request id."""
        digest = hashlib.sha256(self.submission.SerializeToString(deterministic=True))
        return f"{digest.hexdigest()}:{int(self.use_agentic)}"


def proposal_request_id(order_req_id: str, proposal_id: str) -> str:
    """A request_id unique to (order, proposal), within the quote service's 128 characters."""
    digest = hashlib.sha256(f"{order_req_id}\0{proposal_id}".encode()).hexdigest()
    return f"proposal-{digest}"


class QuotePricer:
    def __init__(self, quote: Downstream, *, pricing_timeout: float) -> None:
        self._quote = quote
        self._stub = quote_grpc.QuoteServiceStub(quote.channel)
        self._pricing_timeout = pricing_timeout

    async def submit(self, order_req_id: str, proposal_id: str, proposal: ProposalQuote) -> str:
        request = quote_pb.SubmitQuoteRequest(
            submission=proposal.submission,
            use_agentic=proposal.use_agentic,
            request_id=proposal_request_id(order_req_id, proposal_id),
        )
        response: quote_pb.SubmitQuoteResponse = await self._quote.call(
            self._stub.SubmitQuote, request
        )
        return response.message.id

    async def outcome(self, handle: str) -> PricingOutcome[quote_pb.QueueMessage]:
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
            except DownstreamError as error:
                if error.downstream_code is not grpc.StatusCode.UNAVAILABLE:
                    return PricingOutcome(None, str(error))
                await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
                delay = min(delay * 2, _RECONNECT_CAP)
        return PricingOutcome(
            None, f"quote {handle} was not final within {self._pricing_timeout:g}s"
        )


def _outcome(message: quote_pb.QueueMessage) -> PricingOutcome[quote_pb.QueueMessage]:
    if message.status == quote_pb.MESSAGE_STATUS_COMPLETED:
        return PricingOutcome(message)
    status = quote_pb.MessageStatus.Name(message.status).removeprefix("MESSAGE_STATUS_")
    why = f": {message.error_message}" if message.error_message else ""
    return PricingOutcome(None, f"quote {message.id} ended {status}{why}")
