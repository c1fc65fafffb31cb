"""No response outgrows gRPC's default 4 MiB: an order takes at most
max_proposals_per_order proposals, and at that cap the largest response that
holds every event of an order, a requestor's GetTaskResult, still fits."""

import grpc
import pytest
from google.rpc import error_details_pb2
from support.processor_harness import ProcessorHarness
from support.quote_harness import QuoteHarness
from support.rpc_errors import details, reason

from processor_svc.config import ProcessorConfig
from processor_svc.pricing import ERROR_MAX_CHARS
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from service_runtime.validation import ID_MAX_CHARS

GRPC_DEFAULT_LIMIT = 4 * 1024 * 1024
#: A character of the most bytes UTF-8 takes, allowed in ids, names and notes.
WIDE = "\U0001f600"


def largest_submission() -> quote_pb.Submission:
    # The quote service's documented limits, each at its largest; the coverage
    # and the claims send the quote to review, whose note is the largest field.
    return quote_pb.Submission(
        applicant_name=WIDE * 200,
        address=WIDE * 500,
        coverage_amount=50_000_000,
        property_type=quote_pb.PROPERTY_TYPE_COMMERCIAL,
        year_built=1800,
        prior_claims=20,
    )


async def largest_event(quote: QuoteHarness, processor: ProcessorHarness) -> pb.OrderEvent:
    """A PROPOSAL_NEW event as large as the services make one: the longest ids,
    the agentic pipeline's steps, and a review with the longest reviewer and note."""
    order, proposal = WIDE * ID_MAX_CHARS, WIDE * ID_MAX_CHARS
    await processor.stub.SubmitProposal(
        pb.SubmitProposalRequest(
            order_req_id=order,
            proposal_id=proposal,
            submission=largest_submission(),
            use_agentic=True,
        )
    )
    watch = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id=order))
    [message] = (await quote.stub.ListMessages(quote_pb.ListMessagesRequest())).messages
    async for response in quote.stub.WatchMessage(quote_pb.WatchMessageRequest(id=message.id)):
        if response.message.status == quote_pb.MESSAGE_STATUS_AWAITING_REVIEW:
            break
    await quote.stub.ReviewQuote(
        quote_pb.ReviewQuoteRequest(
            id=message.id,
            decision=quote_pb.REVIEW_DECISION_APPROVE,
            reviewer=WIDE * 200,
            note=WIDE * 2000,
        )
    )
    event = (await anext(aiter(watch))).event
    watch.cancel()
    assert event.kind == pb.ORDER_EVENT_KIND_PROPOSAL_NEW
    assert event.quote.review.note == WIDE * 2000
    return event


async def test_a_task_result_at_the_proposal_cap_fits_the_default_limit(
    quote: QuoteHarness, processor: ProcessorHarness
):
    cap = ProcessorConfig().max_proposals_per_order
    event = await largest_event(quote, processor)
    # Sequences of the most digits: this run's are short. (A priced quote keeps
    # no error; a failed proposal's event has no quote and an error of at most
    # ERROR_MAX_CHARS, so it is smaller than this one.)
    event.sequence = 2**62
    result = requestor_pb.TaskResult(
        task_id=WIDE * ID_MAX_CHARS,
        order_req_id=event.order_req_id,
        priority=requestor_pb.TASK_PRIORITY_HIGH,
        status=requestor_pb.TASK_STATUS_SUCCEEDED,
        proposals=[event] * cap,
        error_message=WIDE * ERROR_MAX_CHARS,
        last_sequence=2**62,
        reconnects=2**30,
        submission=largest_submission(),
    )
    for stamp in (result.created_at, result.started_at, result.completed_at, result.deadline):
        stamp.GetCurrentTime()
    size = requestor_pb.GetTaskResultResponse(result=result).ByteSize()
    assert size < GRPC_DEFAULT_LIMIT, f"{cap} proposals make {size:,} bytes"


async def test_a_proposal_past_the_cap_is_refused_as_a_failed_precondition(
    quote: QuoteHarness, start_processor
):
    processor = await start_processor(quote.server.address, max_proposals_per_order=1)
    base = pb.SubmitProposalRequest(order_req_id="FULL", submission=largest_submission())
    base.submission.coverage_amount = 250_000
    base.submission.prior_claims = 0
    first = pb.SubmitProposalRequest(proposal_id="P1")
    first.MergeFrom(base)
    await processor.stub.SubmitProposal(first)
    second = pb.SubmitProposalRequest(proposal_id="P2")
    second.MergeFrom(base)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await processor.stub.SubmitProposal(second)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(refused.value) == "ORDER_INVALID_STATE"
    assert "holds 1 proposals, the most an order may hold" in refused.value.details()
    info = details(refused.value)[error_details_pb2.ErrorInfo]
    assert info.metadata["state"] == "full"
