"""QuoteService refuses text that is blank or misleads, ids outside the id grammar
and invalid Durations, each with a field violation, and queues nothing."""

import pytest
from google.protobuf.duration_pb2 import Duration
from support.quote_harness import QuoteHarness, submission
from support.validation_cases import BAD_DURATIONS, BAD_IDS, ID_GRAMMAR, violations_of

from quoteflow.quote.v1 import quote_service_pb2 as pb

# The examples of text that passed as "required, not blank".
MISLEADING = {
    "nul": "\x00",
    "zero width space": "\u200b",
    "byte order mark": "\ufeff",
    "ansi escape": "\x1b[31mAda",
    "right-to-left override": "\u202eAda",
}


async def assert_nothing_queued(quote: QuoteHarness) -> None:
    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert stats.pending_count + stats.processing_count + stats.completed_count == 0


@pytest.mark.parametrize("text", MISLEADING.values(), ids=MISLEADING)
async def test_names_and_addresses_that_mislead_are_refused(quote, text):
    bad = submission(text)
    bad.address = f"1 Road{text}"
    for call in (
        quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=bad)),
        quote.stub.RunQuote(pb.RunQuoteRequest(submission=bad)),
    ):
        violations = await violations_of(call)
        assert set(violations) == {"submission.applicant_name", "submission.address"}
        assert violations["submission.address"].startswith("must not contain")
    await assert_nothing_queued(quote)


@pytest.mark.parametrize(("seconds", "nanos"), BAD_DURATIONS)
async def test_an_invalid_attempt_timeout_is_refused_not_read(quote, seconds, nanos):
    timeout = Duration(seconds=seconds, nanos=nanos)
    for call in (
        quote.stub.SubmitQuote(
            pb.SubmitQuoteRequest(submission=submission(), attempt_timeout=timeout)
        ),
        quote.stub.RunQuote(pb.RunQuoteRequest(submission=submission(), attempt_timeout=timeout)),
    ):
        violations = await violations_of(call)
        assert list(violations) == ["attempt_timeout"]
        assert violations["attempt_timeout"].startswith("is not a valid Duration: ")
    await assert_nothing_queued(quote)


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_every_id_the_service_takes_follows_the_id_grammar(quote, bad_id):
    for call in (
        quote.stub.GetMessage(pb.GetMessageRequest(id=bad_id)),
        quote.stub.CancelMessage(pb.CancelMessageRequest(id=bad_id)),
        quote.stub.RedriveMessage(pb.RedriveMessageRequest(id=bad_id)),
        quote.stub.ReviewQuote(
            pb.ReviewQuoteRequest(id=bad_id, decision=pb.REVIEW_DECISION_APPROVE, reviewer="ann")
        ),
    ):
        assert (await violations_of(call))["id"].startswith(ID_GRAMMAR)
    watch = quote.stub.WatchMessage(pb.WatchMessageRequest(id=bad_id))
    assert (await violations_of(anext(aiter(watch))))["id"].startswith(ID_GRAMMAR)
    request = pb.SubmitQuoteRequest(submission=submission(), request_id=bad_id)
    violations = await violations_of(quote.stub.SubmitQuote(request))
    assert violations["request_id"].startswith(ID_GRAMMAR)
    await assert_nothing_queued(quote)


async def test_a_review_names_its_reviewer_in_plain_text_and_its_note_may_have_lines(quote):
    sent = await quote.stub.SubmitQuote(
        pb.SubmitQuoteRequest(submission=submission("Big", 3_000_000))
    )
    async for update in quote.stub.WatchMessage(pb.WatchMessageRequest(id=sent.message.id)):
        if update.message.status == pb.MESSAGE_STATUS_AWAITING_REVIEW:
            break
    else:
        raise AssertionError("the quote was never held for review")
    review = pb.ReviewQuoteRequest(
        id=sent.message.id,
        decision=pb.REVIEW_DECISION_APPROVE,
        reviewer="\u202eann",
        note="fine\x1b[2J",
    )
    violations = await violations_of(quote.stub.ReviewQuote(review))
    assert violations == {
        "reviewer": "must not contain format characters; found U+202E (Cf) at index 0",
        "note": "must not contain control characters; found U+001B (Cc) at index 4",
    }
    review.reviewer, review.note = "Zoë", "checked twice:\n\tthe roof and the walls"
    approved = (await quote.stub.ReviewQuote(review)).message
    assert approved.status == pb.MESSAGE_STATUS_COMPLETED
    assert (approved.review.reviewer, approved.review.note) == ("Zoë", review.note)
