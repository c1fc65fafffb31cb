"""CompleteOrder answers promptly and is recorded while a proposal's quote waits
for a human review: that proposal is withdrawn and its quote cancelled."""

import asyncio

import grpc
import pytest
from support.quote_harness import QuoteHarness, submission

from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

# A deadline only so that a completion that hangs fails the test instead of
# holding it: nothing is asserted about how long the call took.
HANG_GUARD = 30.0


async def message_in(quote: QuoteHarness, status: int) -> quote_pb.QueueMessage:
    """The one message in status, once there is one."""
    request = quote_pb.ListMessagesRequest(status=status)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_GUARD
    while not (messages := (await quote.stub.ListMessages(request)).messages):
        assert loop.time() < deadline, f"no message became {quote_pb.MessageStatus.Name(status)}"
        await asyncio.sleep(0.01)
    [message] = messages
    return message


async def test_completing_while_a_quote_awaits_review_withdraws_it_and_answers(
    quote: QuoteHarness, start_processor
):
    # A wait no test outlasts: only the review can let the completion go on.
    processor = await start_processor(quote.server.address, completion_wait=3600.0)
    for proposal, coverage in (("REVIEW", 3_000_000), ("AUTO", 250_000)):
        await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(
                order_req_id="ORD",
                proposal_id=proposal,
                submission=submission(f"ORD-{proposal}", coverage),
            )
        )
    in_review = await message_in(quote, quote_pb.MESSAGE_STATUS_AWAITING_REVIEW)

    done = await processor.stub.CompleteOrder(
        pb.CompleteOrderRequest(order_req_id="ORD"), timeout=HANG_GUARD
    )

    assert done.event.kind == pb.ORDER_EVENT_KIND_ORDER_COMPLETED
    call = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id="ORD"))
    events = {r.event.proposal_id or "ORD": r.event async for r in call}
    assert [e.sequence for e in events.values()] == [1, 2, 3]
    assert events["ORD"].sequence == 3
    assert events["AUTO"].kind == pb.ORDER_EVENT_KIND_PROPOSAL_NEW
    withdrawn = events["REVIEW"]
    assert (withdrawn.kind, withdrawn.text) == (
        pb.ORDER_EVENT_KIND_PROPOSAL_FAILED,
        "REVIEW/Failed",
    )
    assert "awaiting a human review" in withdrawn.error_message
    cancelled = await message_in(quote, quote_pb.MESSAGE_STATUS_CANCELLED)
    assert cancelled.id == in_review.id
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(
                order_req_id="ORD", proposal_id="LATE", submission=submission()
            )
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
