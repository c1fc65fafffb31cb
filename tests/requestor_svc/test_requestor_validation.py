"""RequestorService holds PlaceOrder's submission to SubmitQuote's own check, its
ids to the id grammar and its timeout to what a Duration may be."""

import pytest
from google.protobuf.duration_pb2 import Duration
from support.quote_harness import submission
from support.validation_cases import BAD_DURATIONS, BAD_IDS, ID_GRAMMAR, violations_of

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb


@pytest.mark.parametrize(
    "bad",
    [
        # The example.
        {"applicant_name": "x" * 3_000_000, "coverage_amount": -5, "property_type": 77},
        {"applicant_name": "\x00", "address": "\u200b", "year_built": 1700, "prior_claims": 21},
        {"applicant_name": "\ufeff", "address": "1 Road\x1b[31m", "coverage_amount": 50_000_001},
        {"applicant_name": "\u202eAda", "address": " \u3000 "},
    ],
)
async def test_place_order_refuses_a_submission_exactly_as_submit_quote_does(
    requestor, start_quote, bad
):
    quote = await start_quote()
    given = submission()
    for field, value in bad.items():
        setattr(given, field, value)
    as_quote = await violations_of(
        quote.stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=given))
    )
    as_order = await violations_of(requestor.place("ORD-1", submission=given))
    assert as_order == as_quote
    assert set(as_order) == {f"submission.{field}" for field in bad}
    assert await requestor.stats() == (0, 0, 0, 10)


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_every_id_the_service_takes_follows_the_id_grammar(requestor, bad_id):
    violations = await violations_of(
        requestor.place(bad_id, request_id=bad_id, fairness_key=bad_id)
    )
    assert set(violations) == {"order_req_id", "request_id", "fairness_key"}
    assert all(v.startswith(ID_GRAMMAR) for v in violations.values())
    for call in (
        requestor.stub.GetTaskResult(pb.GetTaskResultRequest(task_id=bad_id)),
        requestor.stub.CancelTask(pb.CancelTaskRequest(task_id=bad_id)),
    ):
        assert (await violations_of(call))["task_id"].startswith(ID_GRAMMAR)
    assert await requestor.stats() == (0, 0, 0, 10)


@pytest.mark.parametrize(("seconds", "nanos"), BAD_DURATIONS)
async def test_an_invalid_timeout_is_refused_not_read(requestor, seconds, nanos):
    timeout = Duration(seconds=seconds, nanos=nanos)
    violations = await violations_of(requestor.place("ORD-1", timeout=timeout))
    assert list(violations) == ["timeout"]
    assert violations["timeout"].startswith("is not a valid Duration: ")
    assert await requestor.stats() == (0, 0, 0, 10)
