"""Translation between quoteflow.processor.v1 messages and the order queues."""

from google.protobuf.timestamp_pb2 import Timestamp

from processor_svc.quote_pricer import ProposalQuote
from queues.order_events import OrderEvent, OrderEventKind
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.submission_limits import check_submission
from service_runtime.validation import Violations

_KINDS = {
    OrderEventKind.PROPOSAL_NEW: pb.ORDER_EVENT_KIND_PROPOSAL_NEW,
    OrderEventKind.PROPOSAL_FAILED: pb.ORDER_EVENT_KIND_PROPOSAL_FAILED,
    OrderEventKind.ORDER_COMPLETED: pb.ORDER_EVENT_KIND_ORDER_COMPLETED,
}


def proposal(request: pb.SubmitProposalRequest) -> ProposalQuote:
    """The proposal to price, or INVALID_ARGUMENT naming every bad field before any
    order is touched; the submission is held to SubmitQuote's own check."""
    problems = Violations()
    problems.check_id("order_req_id", request.order_req_id)
    problems.check_id("proposal_id", request.proposal_id)
    problems.check_id("request_id", request.request_id, required=False)
    problems.check_id("fairness_key", request.fairness_key, required=False)
    if request.HasField("submission"):
        check_submission(problems, "submission", request.submission)
    else:
        problems.add("submission", "is required")
    problems.raise_if_any()
    return ProposalQuote(request.submission, request.use_agentic, request.fairness_key)


def watch_cursor(request: pb.WatchOrderRequest) -> int:
    problems = Violations()
    problems.check_id("order_req_id", request.order_req_id)
    if request.after_sequence < 0:
        problems.add("after_sequence", f"must not be negative; got {request.after_sequence}")
    problems.raise_if_any()
    return request.after_sequence


def event_to_pb(event: OrderEvent[quote_pb.QueueMessage]) -> pb.OrderEvent:
    created_at = Timestamp()
    created_at.FromNanoseconds(round(event.created_at * 1e9))
    return pb.OrderEvent(
        order_req_id=event.order_req_id,
        sequence=event.sequence,
        kind=_KINDS[event.kind],
        proposal_id=event.proposal_id,
        quote=event.data,
        created_at=created_at,
        text=event.text,
        error_message=event.error,
    )
