"""BatchSubmitQuotes over real gRPC: every item queued in order, or none of them."""

import grpc
import pytest
from google.rpc import error_details_pb2
from support.polling import final_state
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import details, field_violations, reason

from quoteflow.quote.v1 import quote_service_pb2 as pb


def item(name: str, **fields: object) -> pb.SubmitQuoteRequest:
    coverage = fields.pop("coverage", 250_000)
    return pb.SubmitQuoteRequest(submission=submission(name, coverage), **fields)


async def batch(quote: QuoteHarness, *items: pb.SubmitQuoteRequest) -> list[pb.SubmitQuoteResponse]:
    answer = await quote.stub.BatchSubmitQuotes(pb.BatchSubmitQuotesRequest(requests=items))
    return list(answer.responses)


async def refused(quote: QuoteHarness, *items: pb.SubmitQuoteRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await batch(quote, *items)
    return error.value


async def listed_names(quote: QuoteHarness) -> list[str]:
    listed = await quote.stub.ListMessages(pb.ListMessagesRequest())
    return [m.payload.applicant_name for m in listed.messages]


async def hold_the_worker(quote: QuoteHarness) -> None:
    """Keep the harness's one worker busy, so what is queued next stays PENDING."""
    quote.rating.gate("busy")
    await quote.stub.SubmitQuote(item("busy"))
    await quote.rating.wait_started("busy")


async def test_a_batch_queues_every_item_in_request_order_with_its_priority(quote):
    await hold_the_worker(quote)
    priorities = [
        pb.PRIORITY_LOW,
        pb.PRIORITY_NORMAL,
        pb.PRIORITY_HIGH,
        pb.PRIORITY_NORMAL,
        pb.PRIORITY_URGENT,
    ]
    names = [f"item-{i}" for i in range(len(priorities))]
    answers = await batch(
        quote, *(item(n, priority=p) for n, p in zip(names, priorities, strict=True))
    )
    assert [a.message.payload.applicant_name for a in answers] == names
    assert [a.message.priority for a in answers] == priorities
    assert {a.message.status for a in answers} == {pb.MESSAGE_STATUS_PENDING}
    # Earlier items of the batch are ahead of later ones of their priority or lower.
    assert [a.queue_position for a in answers] == [0, 0, 0, 2, 0]
    assert all(a.estimated_processing_time.ToNanoseconds() > 0 for a in answers)
    assert await listed_names(quote) == ["busy", *names]

    quote.rating.gates["busy"].set()
    # The one worker takes the LOW item last.
    await final_state(quote.queue, answers[0].message.id)
    assert quote.rating.priced == ["busy", "item-4", "item-2", "item-1", "item-3", "item-0"]


async def test_each_item_keeps_its_own_retries_timeout_and_request_id(quote):
    timeout = pb.SubmitQuoteRequest(attempt_timeout={"seconds": 7}).attempt_timeout
    answers = await batch(
        quote,
        item("plain"),
        item("careful", max_retries=0, attempt_timeout=timeout, request_id="careful-1"),
    )
    plain, careful = (a.message for a in answers)
    assert (plain.max_retries, plain.attempt_timeout.seconds, plain.request_id) == (3, 300, "")
    assert (careful.max_retries, careful.attempt_timeout.seconds) == (0, 7)
    assert careful.request_id == "careful-1"


async def test_an_item_with_a_request_id_seen_before_answers_the_first_message(quote):
    first = await quote.stub.SubmitQuote(item("Once", request_id="req-1"))
    answers = await batch(quote, item("Once", request_id="req-1"), item("New", request_id="req-2"))
    assert answers[0].message.id == first.message.id
    assert answers[0].queue_position == first.queue_position
    again = await batch(quote, item("Once", request_id="req-1"), item("New", request_id="req-2"))
    assert [a.message.id for a in again] == [a.message.id for a in answers]
    assert sorted(await listed_names(quote)) == ["New", "Once"]


async def test_a_request_id_reused_for_another_submission_refuses_the_whole_batch(quote):
    await quote.stub.SubmitQuote(item("Once", request_id="req-1"))
    error = await refused(quote, item("Fresh"), item("Changed", request_id="req-1"))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(error) == "REQUEST_ID_REUSED"
    assert details(error)[error_details_pb2.ErrorInfo].metadata["requestId"] == "req-1"
    assert "item 1" in error.details()
    assert await listed_names(quote) == ["Once"]


async def test_every_bad_field_of_every_item_is_named_under_its_index_and_nothing_is_queued(quote):
    error = await refused(
        quote,
        item("Good"),
        item("Poor", coverage=0),
        item("Also good"),
        item("", max_retries=11),
        pb.SubmitQuoteRequest(),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {
        "requests[1].submission.coverage_amount",
        "requests[3].submission.applicant_name",
        "requests[3].max_retries",
        "requests[4].submission",
    }
    assert await listed_names(quote) == []


@pytest.mark.parametrize("size", [0, 1001])
async def test_an_empty_or_oversized_batch_is_a_violation_of_requests(quote, size):
    error = await refused(quote, *(item(f"n{i}") for i in range(size)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"requests"}
    assert await listed_names(quote) == []


async def test_a_request_id_repeated_within_the_batch_names_the_second_item(quote):
    error = await refused(
        quote,
        item("A", request_id="twice"),
        item("B", request_id="other"),
        item("C", request_id="twice"),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"requests[2].request_id": "repeats requests[0].request_id"}
    assert await listed_names(quote) == []


async def test_a_batch_the_queue_has_no_room_for_queues_nothing(start_quote):
    quote = await start_quote(max_size=5)
    await hold_the_worker(quote)
    await batch(quote, item("one", request_id="one"), item("two"), item("three"))
    # Four of five places are taken: two new items do not fit, not even one of them.
    error = await refused(quote, item("four"), item("five"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(error) == "QUEUE_FULL"
    assert details(error)[error_details_pb2.RetryInfo].retry_delay.ToNanoseconds() > 0
    assert await listed_names(quote) == ["busy", "one", "two", "three"]
    # A repeat takes no room, so it fits beside the one new item that does.
    answers = await batch(quote, item("one", request_id="one"), item("four"))
    assert [a.message.payload.applicant_name for a in answers] == ["one", "four"]
    assert await listed_names(quote) == ["busy", "one", "two", "three", "four"]
