"""ProcessorService checks a proposal itself, exactly as SubmitQuote checks a
submission, and holds every id it takes to the id grammar."""

import socket

import pytest
from support.quote_harness import submission
from support.validation_cases import BAD_IDS, ID_GRAMMAR, violations_of

from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb


def unused_address() -> str:
    """An address nothing listens on: a call to it could only fail UNAVAILABLE."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_a_bad_submission_is_refused_here_with_submit_quotes_violations(
    quote, start_processor
):
    # Refused without the quote service, which is not even reachable.
    processor = await start_processor(unused_address())
    bad = quote_pb.Submission(
        applicant_name="x" * 3_000_000, address="\u200b", coverage_amount=-5, property_type=77
    )
    proposal = pb.SubmitProposalRequest(order_req_id="ORD", proposal_id="P1", submission=bad)
    here = await violations_of(processor.stub.SubmitProposal(proposal))
    direct = quote.stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=bad))
    assert here == await violations_of(direct)
    assert set(here) == {
        "submission.applicant_name",
        "submission.address",
        "submission.coverage_amount",
        "submission.property_type",
    }
    stats = await processor.stub.GetStats(pb.GetStatsRequest())
    assert (stats.order_queues_count, stats.proposals_in_flight) == (0, 0)


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_every_id_the_service_takes_follows_the_id_grammar(processor, bad_id):
    proposal = pb.SubmitProposalRequest(
        order_req_id=bad_id,
        proposal_id=bad_id,
        submission=submission(),
        request_id=bad_id,
        fairness_key=bad_id,
    )
    violations = await violations_of(processor.stub.SubmitProposal(proposal))
    assert set(violations) == {"order_req_id", "proposal_id", "request_id", "fairness_key"}
    assert all(v.startswith(ID_GRAMMAR) for v in violations.values())
    complete = processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id=bad_id))
    assert (await violations_of(complete))["order_req_id"].startswith(ID_GRAMMAR)
    watch = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id=bad_id))
    violations = await violations_of(anext(aiter(watch)))
    assert violations["order_req_id"].startswith(ID_GRAMMAR)
    stats = await processor.stub.GetStats(pb.GetStatsRequest())
    assert stats.order_queues_count == 0
