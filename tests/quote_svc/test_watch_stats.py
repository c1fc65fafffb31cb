"""WatchStats: GetStats's answer at once, then again as the queue changes, a
burst of changes coalesced into few answers, and a bad interval refused."""

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import field_violations

from quoteflow.quote.v1 import quote_service_pb2 as pb

FAST = pb.WatchStatsRequest(min_interval=Duration(nanos=100_000_000))


async def next_stats(stream: grpc.aio.UnaryStreamCall, until) -> pb.GetStatsResponse:
    """The first answer of stream for which until(stats) holds."""
    async for answer in stream:
        if until(answer.stats):
            return answer.stats
    raise AssertionError("the stream ended")


async def test_the_first_answer_is_get_stats_and_changes_follow(quote: QuoteHarness) -> None:
    quote.rating.gate("Ada")
    stream = quote.stub.WatchStats(FAST)
    first = (await anext(aiter(stream))).stats
    assert first == await quote.stub.GetStats(pb.GetStatsRequest())
    assert (first.pending_count, first.completed_count, first.max_size) == (0, 0, 1000)

    await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
    running = await next_stats(stream, lambda s: s.processing_count == 1)
    assert running.completed_count == 0
    quote.rating.gates["Ada"].set()
    done = await next_stats(stream, lambda s: s.completed_count == 1)
    assert (done.pending_count, done.processing_count) == (0, 0)
    stream.cancel()


async def test_a_burst_of_changes_makes_few_answers(quote: QuoteHarness) -> None:
    quote.rating.gate("held")
    stream = quote.stub.WatchStats(pb.WatchStatsRequest(min_interval=Duration(seconds=1)))
    answers = aiter(stream)
    await anext(answers)
    loop = asyncio.get_running_loop()
    began = loop.time()
    requests = [
        pb.SubmitQuoteRequest(submission=submission("held"), request_id=f"burst-{n}")
        for n in range(50)
    ]
    await asyncio.gather(*(quote.stub.SubmitQuote(r) for r in requests))
    # 50 submissions and their claims are some 100 changes: one answer a second.
    seen = 0
    async for answer in answers:
        seen += 1
        stats = answer.stats
        if stats.pending_count + stats.processing_count == 50:
            break
    elapsed = loop.time() - began
    assert seen <= elapsed + 2
    quote.rating.gates["held"].set()
    stream.cancel()


@pytest.mark.parametrize(
    ("interval", "complaint"),
    [
        (Duration(nanos=50_000_000), "must be from 0.1 s to 60 s; got 0.05 s"),
        (Duration(seconds=61), "must be from 0.1 s to 60 s; got 61 s"),
        (Duration(seconds=1, nanos=-1), "is not a valid Duration"),
    ],
)
async def test_an_interval_out_of_bounds_is_invalid(
    quote: QuoteHarness, interval: Duration, complaint: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in quote.stub.WatchStats(pb.WatchStatsRequest(min_interval=interval)):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in field_violations(refused.value)["min_interval"]
