"""QuoteService over real gRPC: a server in-process on port 0, called through its stub."""

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import details, field_violations, reason

from quote_svc.domain import Submission
from quote_svc.rating import rate
from quoteflow.quote.v1 import quote_service_pb2 as pb

FINAL = {
    pb.MESSAGE_STATUS_COMPLETED,
    pb.MESSAGE_STATUS_FAILED,
    pb.MESSAGE_STATUS_CANCELLED,
    pb.MESSAGE_STATUS_REJECTED,
}


async def watch(quote: QuoteHarness, message_id: str) -> list[pb.QueueMessage]:
    call = quote.stub.WatchMessage(pb.WatchMessageRequest(id=message_id))
    return [response.message async for response in call]


async def watch_until(quote: QuoteHarness, message_id: str, status: int) -> pb.QueueMessage:
    async for response in quote.stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
        if response.message.status == status:
            return response.message
    raise AssertionError(f"{message_id} never reached {pb.MessageStatus.Name(status)}")


async def submit(quote: QuoteHarness, name: str, **fields: object) -> pb.SubmitQuoteResponse:
    coverage = fields.pop("coverage", 250_000)
    request = pb.SubmitQuoteRequest(submission=submission(name, coverage), **fields)
    return await quote.stub.SubmitQuote(request)


async def test_submit_answers_at_once_then_completes_with_the_rating(quote):
    quote.rating.gate("Ada")
    response = await submit(quote, "Ada")
    assert response.message.status == pb.MESSAGE_STATUS_PENDING
    assert response.message.priority == pb.PRIORITY_NORMAL
    assert response.queue_position == 0
    assert response.estimated_processing_time.ToTimedelta().total_seconds() > 0
    stream = quote.stub.WatchMessage(pb.WatchMessageRequest(id=response.message.id))
    first = await anext(aiter(stream))
    quote.rating.gates["Ada"].set()
    states = [first.message] + [r.message async for r in stream]
    assert [s.status for s in states][-2:] == [
        pb.MESSAGE_STATUS_PROCESSING,
        pb.MESSAGE_STATUS_COMPLETED,
    ]
    got = (await quote.stub.GetMessage(pb.GetMessageRequest(id=response.message.id))).message
    expected = rate(Submission("Ada", "12 St James's Square, London", 250_000))
    assert got.result.annual_premium_cents == expected.annual_premium_cents
    assert [f.name for f in got.result.factors] == [f.name for f in expected.factors]
    assert got.started_at.ToNanoseconds() > 0 and got.completed_at.ToNanoseconds() > 0


async def test_high_after_fifty_normals_finishes_before_all_of_them(quote):
    quote.rating.gate("busy")
    busy = await submit(quote, "busy", priority=pb.PRIORITY_NORMAL)
    await quote.rating.wait_started("busy")
    normals = [await submit(quote, f"normal-{i}", priority=pb.PRIORITY_NORMAL) for i in range(50)]
    high = await submit(quote, "high", priority=pb.PRIORITY_HIGH)
    assert high.queue_position == 0
    assert normals[-1].queue_position == 49
    quote.rating.gates["busy"].set()
    for response in [busy, *normals, high]:
        await watch(quote, response.message.id)
    assert quote.rating.priced[:2] == ["busy", "high"]
    assert quote.rating.priced[2:] == [f"normal-{i}" for i in range(50)]


async def test_automatic_priority_follows_coverage(quote):
    small = await submit(quote, "small", coverage=99_999)
    middle = await submit(quote, "middle", coverage=100_000)
    large = await submit(quote, "large", coverage=500_001)
    urgent = await submit(quote, "urgent", priority=pb.PRIORITY_URGENT)
    assert [r.message.priority for r in (small, middle, large, urgent)] == [
        pb.PRIORITY_HIGH,
        pb.PRIORITY_NORMAL,
        pb.PRIORITY_HIGH,
        pb.PRIORITY_URGENT,
    ]


async def test_failures_retry_then_dead_letter_then_redrive(quote):
    quote.rating.failures["flaky"] = 3
    quote.rating.gate("flaky")
    response = await submit(quote, "flaky", max_retries=2)
    stream = quote.stub.WatchMessage(pb.WatchMessageRequest(id=response.message.id))
    states = [(await anext(aiter(stream))).message]
    quote.rating.gates["flaky"].set()
    states += [r.message async for r in stream]
    retries = [s for s in states if s.status == pb.MESSAGE_STATUS_PENDING and s.retry_count]
    assert [s.retry_count for s in retries] == [1, 2]
    assert all(s.HasField("next_attempt_at") for s in retries)
    dead = states[-1]
    assert dead.status == pb.MESSAGE_STATUS_FAILED
    assert dead.dead_lettered
    assert dead.error_message == "RuntimeError: rating backend refused flaky"

    listed = await quote.stub.ListMessages(pb.ListMessagesRequest(dead_lettered_only=True))
    assert [m.id for m in listed.messages] == [dead.id]
    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert (stats.failed_count, stats.dead_letter_count) == (1, 1)

    redriven = await quote.stub.RedriveMessage(pb.RedriveMessageRequest(id=dead.id))
    assert redriven.message.status == pb.MESSAGE_STATUS_PENDING
    assert redriven.message.retry_count == 0
    assert (await watch(quote, dead.id))[-1].status == pb.MESSAGE_STATUS_COMPLETED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await quote.stub.RedriveMessage(pb.RedriveMessageRequest(id=dead.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in refused.value.details()


async def test_an_attempt_is_cut_at_its_timeout_and_counts_as_a_failure(quote):
    quote.rating.hang.add("slow")
    response = await submit(
        quote, "slow", max_retries=1, attempt_timeout=Duration(nanos=20_000_000)
    )
    final = (await watch(quote, response.message.id))[-1]
    assert final.status == pb.MESSAGE_STATUS_FAILED
    assert final.retry_count == 2
    assert final.error_message == "attempt timed out after 0.02s"


async def test_cancel_pending_and_processing_and_refuse_final(start_quote):
    # The heartbeat is what finds the running attempt's claim gone and cuts it:
    # a short one, so "after" need not wait out the default 10 s for the slot.
    quote = await start_quote(heartbeat_seconds=0.05)
    quote.rating.gate("running")
    running = await submit(quote, "running")
    await quote.rating.wait_started("running")
    waiting = await submit(quote, "waiting")
    for response in (waiting, running):
        cancelled = await quote.stub.CancelMessage(pb.CancelMessageRequest(id=response.message.id))
        assert cancelled.message.status == pb.MESSAGE_STATUS_CANCELLED
    after = await submit(quote, "after")
    assert (await watch(quote, after.message.id))[-1].status == pb.MESSAGE_STATUS_COMPLETED
    assert quote.rating.priced == ["after"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await quote.stub.CancelMessage(pb.CancelMessageRequest(id=running.message.id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cancelled" in refused.value.details()


async def test_full_queue_is_resource_exhausted_with_retry_info_and_loses_nothing(start_quote):
    quote = await start_quote(max_size=5)
    quote.rating.gate("first")
    accepted = [await submit(quote, "first")]
    await quote.rating.wait_started("first")
    accepted += [await submit(quote, f"m{i}") for i in range(4)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await submit(quote, "overflow")
    error = refused.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = details(error)[error_details_pb2.RetryInfo]
    assert retry.retry_delay.ToTimedelta().total_seconds() > 0
    assert reason(error) == "QUEUE_FULL"
    quote.rating.gates["first"].set()
    finals = [(await watch(quote, r.message.id))[-1].status for r in accepted]
    assert finals == [pb.MESSAGE_STATUS_COMPLETED] * 5
    assert "overflow" not in quote.rating.priced


async def test_invalid_submissions_name_every_bad_field_and_queue_nothing(quote):
    bad = pb.Submission(applicant_name=" ", address="", coverage_amount=0, property_type=99)
    for call, request in [
        (quote.stub.SubmitQuote, pb.SubmitQuoteRequest(submission=bad, priority=42)),
        (quote.stub.RunQuote, pb.RunQuoteRequest(submission=bad, priority=42)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = field_violations(refused.value)
        assert set(violations) == {
            "submission.applicant_name",
            "submission.address",
            "submission.coverage_amount",
            "submission.property_type",
            "priority",
        }
        assert "50,000,000" in violations["submission.coverage_amount"]
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await quote.stub.SubmitQuote(pb.SubmitQuoteRequest())
    assert field_violations(missing.value) == {"submission": "is required"}
    good = pb.Submission(applicant_name="Ada", address="1 Road", coverage_amount=1_000)
    # Beyond what a timedelta holds: still a violation, not an internal error.
    huge = Duration(seconds=10**14)
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=good, attempt_timeout=huge))
    assert set(field_violations(too_long.value)) == {"attempt_timeout"}
    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert stats.pending_count + stats.processing_count + stats.completed_count == 0


async def test_unknown_id_is_not_found_and_empty_id_is_invalid(quote):
    for rpc, request in [
        (quote.stub.GetMessage, pb.GetMessageRequest(id="nope")),
        (quote.stub.CancelMessage, pb.CancelMessageRequest(id="nope")),
        (quote.stub.RedriveMessage, pb.RedriveMessageRequest(id="nope")),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await rpc(request)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in missing.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as stream_missing:
        await watch(quote, "nope")
    assert stream_missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await quote.stub.GetMessage(pb.GetMessageRequest())
    assert field_violations(empty.value) == {"id": "is required"}


async def test_retention_sweep_removes_finished_messages(start_quote):
    # A second of retention leaves the watch time to see the message finish before the sweep.
    quote = await start_quote(retention_seconds=1.0, sweep_interval=0.01)
    response = await submit(quote, "Ada")
    seen = await watch(quote, response.message.id)
    assert seen[-1].status == pb.MESSAGE_STATUS_COMPLETED
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        try:
            await quote.stub.GetMessage(pb.GetMessageRequest(id=response.message.id))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the retention sweep never removed the message")


async def test_review_approve_and_reject(quote):
    big = await submit(quote, "Big", coverage=3_000_000)
    claims = pb.SubmitQuoteRequest(submission=submission("Claims", 250_000, prior_claims=4))
    many = await quote.stub.SubmitQuote(claims)
    held = await watch_until(quote, big.message.id, pb.MESSAGE_STATUS_AWAITING_REVIEW)
    assert "2,000,000" in held.result.review_reason
    await watch_until(quote, many.message.id, pb.MESSAGE_STATUS_AWAITING_REVIEW)

    approve = pb.ReviewQuoteRequest(
        id=big.message.id, decision=pb.REVIEW_DECISION_APPROVE, reviewer="ann", note="ok"
    )
    approved = (await quote.stub.ReviewQuote(approve)).message
    assert approved.status == pb.MESSAGE_STATUS_COMPLETED
    assert (approved.review.reviewer, approved.review.note) == ("ann", "ok")
    reject = pb.ReviewQuoteRequest(
        id=many.message.id, decision=pb.REVIEW_DECISION_REJECT, reviewer="bob"
    )
    rejected = (await quote.stub.ReviewQuote(reject)).message
    assert rejected.status == pb.MESSAGE_STATUS_REJECTED
    assert (await quote.stub.GetMessage(pb.GetMessageRequest(id=many.message.id))).message.review
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await quote.stub.ReviewQuote(approve)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await quote.stub.ReviewQuote(pb.ReviewQuoteRequest(id=big.message.id))
    assert set(field_violations(bad.value)) == {"decision", "reviewer"}


async def test_stats_are_exact_after_a_mixed_workload(start_quote):
    quote = await start_quote(workers=2)
    quote.rating.gate("hold")
    quote.rating.failures["dead"] = 9
    hold = await submit(quote, "hold", priority=pb.PRIORITY_URGENT)
    await quote.rating.wait_started("hold")
    done = [await submit(quote, f"ok-{i}", priority=pb.PRIORITY_LOW) for i in range(3)]
    dead = await submit(quote, "dead", max_retries=0)
    review = await submit(quote, "review", coverage=5_000_000)
    for response in [*done, dead]:
        await watch(quote, response.message.id)
    await watch_until(quote, review.message.id, pb.MESSAGE_STATUS_AWAITING_REVIEW)
    quote.rating.gate("pending")
    pending = await submit(quote, "pending", priority=pb.PRIORITY_NORMAL)
    await quote.rating.wait_started("pending")
    cancelled = await submit(quote, "cancel-me", priority=pb.PRIORITY_HIGH)
    await quote.stub.CancelMessage(pb.CancelMessageRequest(id=cancelled.message.id))
    waiting = await submit(quote, "waiting", priority=pb.PRIORITY_HIGH)

    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert stats.pending_count == 1
    assert stats.processing_count == 2
    assert stats.completed_count == 3
    assert stats.failed_count == 1
    assert stats.dead_letter_count == 1
    assert stats.cancelled_count == 1
    assert stats.awaiting_review_count == 1
    assert stats.rejected_count == 0
    assert (stats.max_size, stats.workers) == (1000, 2)
    assert stats.oldest_pending == waiting.message.created_at
    assert stats.longest_processing_seconds > 0
    by_priority = {p.priority: (p.pending_count, p.processing_count) for p in stats.by_priority}
    assert by_priority == {
        pb.PRIORITY_LOW: (0, 0),
        pb.PRIORITY_NORMAL: (0, 1),
        pb.PRIORITY_HIGH: (1, 0),
        pb.PRIORITY_URGENT: (0, 1),
    }
    assert hold.message.id and pending.message.id


async def test_run_quote_prices_inline_even_when_workers_are_busy(quote):
    quote.rating.gate("busy")
    await submit(quote, "busy")
    await quote.rating.wait_started("busy")
    ran = await quote.stub.RunQuote(pb.RunQuoteRequest(submission=submission("inline")))
    assert ran.message.status == pb.MESSAGE_STATUS_COMPLETED
    assert ran.message.result.annual_premium_cents > 0
    quote.rating.failures["broken"] = 1
    failed = await quote.stub.RunQuote(pb.RunQuoteRequest(submission=submission("broken")))
    assert failed.message.status == pb.MESSAGE_STATUS_FAILED
    assert not failed.message.dead_lettered
    fetched = await quote.stub.GetMessage(pb.GetMessageRequest(id=ran.message.id))
    assert fetched.message.status == pb.MESSAGE_STATUS_COMPLETED


async def test_agentic_pipeline_records_its_steps(quote):
    request = pb.SubmitQuoteRequest(submission=submission("Agent"), use_agentic=True)
    response = await quote.stub.SubmitQuote(request)
    final = (await watch(quote, response.message.id))[-1]
    assert final.use_agentic
    assert [s.name for s in final.result.steps] == [
        "enrichment",
        "risk_scoring",
        "pricing",
        "review_decision",
    ]
    assert final.result.processor == "underwriting"


async def test_list_messages_pages_with_tokens_bound_to_filters(quote):
    quote.rating.gate("blocker")
    await submit(quote, "blocker")
    await quote.rating.wait_started("blocker")
    highs = [(await submit(quote, f"h{i}", priority=pb.PRIORITY_HIGH)).message.id for i in range(5)]
    await submit(quote, "low", priority=pb.PRIORITY_LOW)
    seen, token = [], ""
    while True:
        page = await quote.stub.ListMessages(
            pb.ListMessagesRequest(
                status=pb.MESSAGE_STATUS_PENDING,
                priority=pb.PRIORITY_HIGH,
                page_size=2,
                page_token=token,
            )
        )
        seen += [m.id for m in page.messages]
        token = page.next_page_token
        if not token:
            break
    assert seen == highs
    first = await quote.stub.ListMessages(pb.ListMessagesRequest(page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as other_filters:
        await quote.stub.ListMessages(
            pb.ListMessagesRequest(priority=pb.PRIORITY_LOW, page_token=first.next_page_token)
        )
    assert set(field_violations(other_filters.value)) == {"page_token"}
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await quote.stub.ListMessages(pb.ListMessagesRequest(page_token="%%%"))
    assert set(field_violations(garbage.value)) == {"page_token"}
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await quote.stub.ListMessages(pb.ListMessagesRequest(page_size=-1, status=77))
    assert set(field_violations(negative.value)) == {"page_size", "status"}


async def test_a_repeated_request_id_answers_with_the_first_message(quote):
    request = pb.SubmitQuoteRequest(submission=submission("Once"), request_id="req-42")
    answers = await asyncio.gather(*(quote.stub.SubmitQuote(request) for _ in range(100)))
    assert len({a.message.id for a in answers}) == 1
    listed = await quote.stub.ListMessages(pb.ListMessagesRequest())
    assert len(listed.messages) == 1
    changed = pb.SubmitQuoteRequest(submission=submission("Other"), request_id="req-42")
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await quote.stub.SubmitQuote(changed)
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_health_and_reflection_answer(quote):
    health = health_pb2_grpc.HealthStub(quote.channel)
    for service in ("", "quoteflow.quote.v1.QuoteService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(quote.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in reflection.ServerReflectionInfo(iter([request])):
        names = {s.name for s in answer.list_services_response.service}
    assert names == {
        "quoteflow.quote.v1.QuoteService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
