"""The quote service's metrics after a known workload, read as Prometheus reads
them: the RPC families under go-grpc-prometheus's names and labels, and the
queue's gauges equal to GetStats."""

import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from support.metrics_scrape import Samples, free_port, rendered, scrape, value
from support.polling import poll
from support.quote_harness import QuoteHarness, submission

from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.metrics.endpoint import serving_metrics
from service_runtime.metrics.service_metrics import ServiceMetrics

SERVICE = "quoteflow.quote.v1.QuoteService"


def rpc(method: str, kind: str = "unary") -> dict[str, str]:
    return {"grpc_service": SERVICE, "grpc_method": method, "grpc_type": kind}


async def finished(quote: QuoteHarness, message_id: str) -> pb.QueueMessage:
    final = None
    async for response in quote.stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
        final = response.message
    assert final is not None
    return final


@pytest.fixture
async def metered(start_quote) -> tuple[QuoteHarness, ServiceMetrics]:
    metrics = ServiceMetrics()
    return await start_quote(metrics=metrics, workers=1), metrics


async def test_every_rpc_is_counted_by_method_type_and_go_code(metered):
    quote, metrics = metered
    ok = await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
    with pytest.raises(grpc.aio.AioRpcError):
        await quote.stub.SubmitQuote(pb.SubmitQuoteRequest())
    with pytest.raises(grpc.aio.AioRpcError):
        await quote.stub.GetMessage(pb.GetMessageRequest(id="nope"))
    events = [r async for r in quote.stub.WatchMessage(pb.WatchMessageRequest(id=ok.message.id))]

    samples = rendered(metrics.registry)
    submit = rpc("SubmitQuote")
    assert value(samples, "grpc_server_started_total", **submit) == 2
    assert value(samples, "grpc_server_handled_total", **submit, grpc_code="OK") == 1
    assert value(samples, "grpc_server_handled_total", **submit, grpc_code="InvalidArgument") == 1
    assert value(samples, "grpc_server_msg_received_total", **submit) == 2
    assert value(samples, "grpc_server_msg_sent_total", **submit) == 1
    assert value(samples, "grpc_server_handling_seconds_count", **submit) == 2
    get = rpc("GetMessage")
    assert value(samples, "grpc_server_handled_total", **get, grpc_code="NotFound") == 1
    watch = rpc("WatchMessage", "server_stream")
    assert value(samples, "grpc_server_msg_sent_total", **watch) == len(events) >= 1
    assert value(samples, "grpc_server_handled_total", **watch, grpc_code="OK") == 1
    # The stream ended: none is open.
    assert value(samples, "quoteflow_rpc_streams_active", grpc_service=SERVICE,
                 grpc_method="WatchMessage") == 0  # fmt: skip


async def test_an_open_stream_is_counted_while_it_is_open(metered):
    quote, metrics = metered
    quote.rating.gate("held")
    held = await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("held")))
    stream = quote.stub.WatchMessage(pb.WatchMessageRequest(id=held.message.id))
    await anext(aiter(stream))
    labels = {"grpc_service": SERVICE, "grpc_method": "WatchMessage"}
    assert value(rendered(metrics.registry), "quoteflow_rpc_streams_active", **labels) == 1
    quote.rating.gates["held"].set()
    _ = [r async for r in stream]
    await poll(
        lambda: value(rendered(metrics.registry), "quoteflow_rpc_streams_active", **labels),
        lambda open_streams: open_streams == 0,
        "the stream counted closed",
    )


async def test_attempts_retries_dead_letters_and_timeouts_are_counted(metered):
    quote, metrics = metered
    quote.rating.failures["flaky"] = 1
    quote.rating.failures["dead"] = 9
    quote.rating.hang.add("slow")
    names = {"ok": {}, "flaky": {"max_retries": 1}, "dead": {"max_retries": 1}}
    for name, fields in names.items():
        request = pb.SubmitQuoteRequest(submission=submission(name), **fields)
        await finished(quote, (await quote.stub.SubmitQuote(request)).message.id)
    slow = pb.SubmitQuoteRequest(
        submission=submission("slow"), max_retries=0, attempt_timeout=Duration(nanos=20_000_000)
    )
    await finished(quote, (await quote.stub.SubmitQuote(slow)).message.id)

    samples = rendered(metrics.registry)
    attempts = {
        outcome: value(samples, "quoteflow_queue_attempts_total", queue="quotes", outcome=outcome)
        for outcome in ("succeeded", "failed", "timed_out", "cancelled")
    }
    # ok 1; flaky failed once then succeeded; dead failed twice; slow timed out.
    assert attempts == {"succeeded": 2, "failed": 3, "timed_out": 1, "cancelled": 0}
    assert value(samples, "quoteflow_queue_retries_total", queue="quotes") == 2
    assert value(samples, "quoteflow_queue_dead_lettered_total", queue="quotes") == 2
    assert value(samples, "quoteflow_queue_processing_seconds_count", queue="quotes") == 6
    # One wait per message, at its first attempt only.
    assert value(samples, "quoteflow_queue_wait_seconds_count", queue="quotes") == 4


async def test_the_scraped_queue_gauges_equal_get_stats(metered):
    quote, metrics = metered
    quote.rating.gate("hold")
    hold = await quote.stub.SubmitQuote(
        pb.SubmitQuoteRequest(submission=submission("hold"), priority=pb.PRIORITY_URGENT)
    )
    await quote.rating.wait_started("hold")
    for i, priority in enumerate((pb.PRIORITY_LOW, pb.PRIORITY_HIGH, pb.PRIORITY_HIGH)):
        request = pb.SubmitQuoteRequest(submission=submission(f"p{i}"), priority=priority)
        await quote.stub.SubmitQuote(request)
    dead = pb.SubmitQuoteRequest(submission=submission("dead"), max_retries=0)
    quote.rating.failures["dead"] = 1
    # The one worker is held: dead waits too. Counted pending, it fails later.
    await quote.stub.SubmitQuote(dead)

    port = free_port()
    async with serving_metrics(metrics, host="127.0.0.1", port=port) as bound:
        assert bound == port
        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
        stats = await quote.stub.GetStats(pb.GetStatsRequest())
        assert_gauges_match(samples, stats)
        assert value(samples, "quoteflow_queue_depth", queue="quotes", status="pending",
                     priority="HIGH") == 2  # fmt: skip

        quote.rating.gates["hold"].set()
        await finished(quote, hold.message.id)
        await poll(
            lambda: quote.stub.GetStats(pb.GetStatsRequest()),
            lambda s: s.pending_count == 0 and s.processing_count == 0,
            "the queue drained",
        )
        samples = await scrape(f"http://127.0.0.1:{port}/metrics")
        stats = await quote.stub.GetStats(pb.GetStatsRequest())
        assert_gauges_match(samples, stats)
        assert value(samples, "quoteflow_queue_dead_letters", queue="quotes") == 1


def assert_gauges_match(samples: Samples, stats: pb.GetStatsResponse) -> None:
    by_status = {
        "pending": stats.pending_count,
        "processing": stats.processing_count,
        "awaiting_review": stats.awaiting_review_count,
        "completed": stats.completed_count,
        "failed": stats.failed_count,
        "cancelled": stats.cancelled_count,
        "rejected": stats.rejected_count,
    }
    for status, count in by_status.items():
        assert value(samples, "quoteflow_queue_messages", queue="quotes", status=status) == count
    for entry in stats.by_priority:
        name = pb.Priority.Name(entry.priority).removeprefix("PRIORITY_")
        for status, count in (
            ("pending", entry.pending_count),
            ("processing", entry.processing_count),
        ):
            assert value(samples, "quoteflow_queue_depth", queue="quotes", status=status,
                         priority=name) == count  # fmt: skip
    assert value(samples, "quoteflow_queue_dead_letters", queue="quotes") == stats.dead_letter_count
    assert value(samples, "quoteflow_queue_max_size", queue="quotes") == stats.max_size
    assert value(samples, "quoteflow_queue_workers", queue="quotes") == stats.workers
    age = value(samples, "quoteflow_queue_oldest_pending_age_seconds", queue="quotes")
    if stats.HasField("oldest_pending"):
        assert 0 < age <= time.time() - stats.oldest_pending.ToDatetime().timestamp() + 1
    else:
        assert age == 0
    assert value(samples, "quoteflow_ready") == 1


async def test_a_taken_metrics_port_stops_the_start_naming_it():
    port = free_port()
    async with serving_metrics(ServiceMetrics(), host="127.0.0.1", port=port):
        with pytest.raises(OSError, match=f"127.0.0.1:{port} \\(metrics_port\\)"):
            async with serving_metrics(ServiceMetrics(), host="127.0.0.1", port=port):
                pass


async def test_off_serves_nothing():
    async with serving_metrics(ServiceMetrics(), host="127.0.0.1", port=0) as bound:
        assert bound is None
