"""The quote service's fairness keys, aging, cap per key and scheduled
messages, over gRPC (in-process, the memory store; every store passes the
same claims in tests/core/test_job_store_fairness.py)."""

import math
import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from support.polling import poll
from support.quote_harness import QuoteHarness, StartQuote, submission
from support.validation_cases import violations_of

from quoteflow.quote.v1 import quote_service_pb2 as pb

LOW, HIGH = pb.PRIORITY_LOW, pb.PRIORITY_HIGH


async def submit(
    quote: QuoteHarness,
    name: str,
    key: str = "",
    priority: int = pb.PRIORITY_NORMAL,
    **fields: object,
) -> pb.QueueMessage:
    request = pb.SubmitQuoteRequest(
        submission=submission(name),
        priority=priority,
        fairness_key=key,
        **fields,  # type: ignore[arg-type]
    )
    return (await quote.stub.SubmitQuote(request)).message


async def message(quote: QuoteHarness, message_id: str) -> pb.QueueMessage:
    return (await quote.stub.GetMessage(pb.GetMessageRequest(id=message_id))).message


async def test_bad_fairness_and_schedule_fields_are_each_named(quote: QuoteHarness) -> None:
    bad = pb.SubmitQuoteRequest(
        submission=submission(),
        fairness_key="tenant a",
        fairness_weight=0.0,
        delay=Duration(seconds=-1),
    )
    found = await violations_of(quote.stub.SubmitQuote(bad))
    assert set(found) == {"fairness_key", "fairness_weight", "delay"}
    assert "whitespace" in found["fairness_key"]
    assert found["fairness_weight"] == "must be more than 0 and at most 100; got 0"
    assert found["delay"] == "must be from 0 s to one year; got -1 s"

    for weight in (math.nan, 101.0):
        request = pb.SubmitQuoteRequest(submission=submission(), fairness_weight=weight)
        assert set(await violations_of(quote.stub.SubmitQuote(request))) == {"fairness_weight"}
    far = Timestamp(seconds=int(time.time()) + 400 * 86_400)
    broken = Timestamp(seconds=1, nanos=-5)
    for stamp, problem in (
        (far, "must be at most one year ahead"),
        (broken, "not a valid Timestamp"),
    ):
        request = pb.SubmitQuoteRequest(submission=submission(), schedule_time=stamp)
        assert problem in (await violations_of(quote.stub.SubmitQuote(request)))["schedule_time"]
    assert (await quote.stub.GetStats(pb.GetStatsRequest())).pending_count == 0


@pytest.mark.parametrize("field", ["schedule_time", "delay"])
async def test_run_quote_refuses_a_schedule(quote: QuoteHarness, field: str) -> None:
    schedule = {
        "schedule_time": Timestamp(seconds=int(time.time()) + 60),
        "delay": Duration(seconds=60),
    }
    request = pb.RunQuoteRequest(submission=submission(), **{field: schedule[field]})  # type: ignore[arg-type]
    found = await violations_of(quote.stub.RunQuote(request))
    assert found == {field: "RunQuote prices now and cannot be scheduled; use SubmitQuote"}
    assert quote.rating.started == []


async def test_a_run_quote_keeps_its_fairness_key(quote: QuoteHarness) -> None:
    request = pb.RunQuoteRequest(submission=submission("Run"), fairness_key="broker-7")
    answer = await quote.stub.RunQuote(request)
    assert answer.message.fairness_key == "broker-7"
    assert answer.message.status == pb.MESSAGE_STATUS_COMPLETED


async def test_a_delayed_message_waits_then_is_priced(quote: QuoteHarness) -> None:
    before = time.time()
    queued = await submit(quote, "Later", delay=Duration(nanos=300_000_000))
    due = queued.schedule_time.ToDatetime().timestamp()
    assert before + 0.3 <= due <= time.time() + 0.3
    assert queued.status == pb.MESSAGE_STATUS_PENDING
    assert queued.next_attempt_at == queued.schedule_time
    done = await poll(
        lambda: message(quote, queued.id),
        lambda m: m.status == pb.MESSAGE_STATUS_COMPLETED,
        "priced",
    )
    assert done.started_at.ToDatetime().timestamp() >= due
    assert done.schedule_time == queued.schedule_time


async def test_a_scheduled_message_can_be_cancelled(quote: QuoteHarness) -> None:
    at = Timestamp(seconds=int(time.time()) + 3600)
    queued = await submit(quote, "Much later", schedule_time=at)
    assert queued.schedule_time == at
    cancelled = await quote.stub.CancelMessage(pb.CancelMessageRequest(id=queued.id))
    assert cancelled.message.status == pb.MESSAGE_STATUS_CANCELLED
    assert quote.rating.started == []


async def test_a_time_already_past_is_at_once(quote: QuoteHarness) -> None:
    queued = await submit(quote, "Past", schedule_time=Timestamp(seconds=int(time.time()) - 60))
    assert not queued.HasField("schedule_time")
    await quote.rating.wait_for("end Past")


async def test_one_keys_burst_does_not_hold_back_anothers_few(quote: QuoteHarness) -> None:
    # One worker, held by the first message while the burst and the few queue up.
    quote.rating.gate("hold")
    await submit(quote, "hold", "A")
    await quote.rating.wait_started("hold")
    for n in range(200):
        await submit(quote, f"a{n}", "A")
    for n in range(5):
        await submit(quote, f"b{n}", "B")
    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert [(k.fairness_key, k.pending_count) for k in stats.busiest_keys] == [("A", 200), ("B", 5)]
    quote.rating.gate("hold").set()
    await poll(lambda: len(quote.rating.priced), lambda n: n == 206, "every message priced")
    order = quote.rating.priced[1:]
    behind = [order.index(f"b{n}") - (order.index(f"b{n - 1}") + 1 if n else 0) for n in range(5)]
    assert max(behind) <= 1, order[:12]


async def test_a_key_at_its_cap_waits_while_others_go_on(start_quote: StartQuote) -> None:
    quote = await start_quote(workers=4, max_processing_per_key=2)
    for n in range(5):
        quote.rating.gate(f"a{n}")
        await submit(quote, f"a{n}", "A")
    await submit(quote, "b0", "B")
    await submit(quote, "b1", "B")
    await quote.rating.wait_for("end b1")
    await quote.rating.wait_for("end b0")
    assert sorted(quote.rating.started) == ["a0", "a1", "b0", "b1"]
    stats = await quote.stub.GetStats(pb.GetStatsRequest())
    assert (stats.processing_count, stats.pending_count) == (2, 3)
    for n in range(5):
        quote.rating.gate(f"a{n}").set()
    await poll(lambda: len(quote.rating.priced), lambda n: n == 7, "every message priced")
    assert most_at_once(quote.rating.log, "a") == 2


def most_at_once(log: list[str], prefix: str) -> int:
    """The most attempts of names starting with prefix that ran at once, by the log."""
    running = most = 0
    for entry in log:
        step, name = entry.split(" ", 1)
        if name.startswith(prefix):
            running += 1 if step == "start" else -1
            most = max(most, running)
    return most


async def test_a_waiting_message_is_shown_aging_towards_urgent(start_quote: StartQuote) -> None:
    quote = await start_quote(aging_interval=0.05)
    quote.rating.gate("hold")
    await submit(quote, "hold")
    await quote.rating.wait_started("hold")
    low = await submit(quote, "Low", priority=LOW)
    assert (low.priority, low.effective_priority) == (LOW, LOW)
    aged = await poll(
        lambda: message(quote, low.id),
        lambda m: m.effective_priority == pb.PRIORITY_URGENT,
        "aged to URGENT",
    )
    assert aged.priority == LOW
    quote.rating.gate("hold").set()
    done = await poll(
        lambda: message(quote, low.id), lambda m: m.status == pb.MESSAGE_STATUS_COMPLETED, "priced"
    )
    assert done.effective_priority == pb.PRIORITY_UNSPECIFIED


async def test_a_negative_aging_interval_is_refused(start_quote: StartQuote) -> None:
    with pytest.raises(ValueError, match="aging_interval"):
        await start_quote(aging_interval=-1.0)


async def test_unset_fields_keep_the_old_behaviour(quote: QuoteHarness) -> None:
    queued = await submit(quote, "Plain")
    assert queued.fairness_key == ""
    assert not queued.HasField("schedule_time")
    await quote.rating.wait_for("end Plain")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await quote.stub.SubmitQuote(
            pb.SubmitQuoteRequest(submission=submission("Plain"), fairness_key="x" * 129)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_rate_limited_key_waits_pending_while_others_are_priced(
    quote: QuoteHarness,
) -> None:
    limit = pb.SetRateLimitRequest(fairness_key="slow", per_second=0.001, burst=1)
    answer = await quote.stub.SetRateLimit(limit)
    assert (answer.fairness_key, answer.per_second, answer.burst) == ("slow", 0.001, 1)
    slow = [await submit(quote, f"slow{n}", "slow") for n in range(3)]
    await submit(quote, "fast", "fast")
    await quote.rating.wait_for("end fast")
    # The one token went to the first; the others wait their turn, not failed.
    assert [n for n in quote.rating.started if n.startswith("slow")] == ["slow0"]
    waiting = [await message(quote, m.id) for m in slow[1:]]
    assert {m.status for m in waiting} == {pb.MESSAGE_STATUS_PENDING}
    lifted = await quote.stub.SetRateLimit(pb.SetRateLimitRequest(fairness_key="slow"))
    assert (lifted.per_second, lifted.burst) == (0, 0)
    await quote.rating.wait_for("end slow2")


async def test_a_burst_left_unset_is_the_rate_rounded_up(quote: QuoteHarness) -> None:
    answer = await quote.stub.SetRateLimit(pb.SetRateLimitRequest(per_second=2.5))
    assert (answer.fairness_key, answer.burst) == ("", 3)


async def test_bad_rate_limits_are_each_named(quote: QuoteHarness) -> None:
    bad = pb.SetRateLimitRequest(fairness_key="a b", per_second=-1, burst=20_000)
    found = await violations_of(quote.stub.SetRateLimit(bad))
    assert set(found) == {"fairness_key", "per_second", "burst"}
    assert found["per_second"] == "must be from 0 to 100,000; got -1"
    assert found["burst"] == "must be from 0 to 10,000; got 20,000"
    nan = pb.SetRateLimitRequest(per_second=math.nan)
    assert set(await violations_of(quote.stub.SetRateLimit(nan))) == {"per_second"}
