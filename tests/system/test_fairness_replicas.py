"""Fairness and scheduling over quote replicas as real processes sharing one
fresh PostgreSQL database: keys take turns whichever replicas accepted them, the
cap per key and a rate limit set on one replica hold on all of them together,
and a message scheduled on one is priced, not before its time, by another
started after it."""

import signal
from collections.abc import Sequence

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from support.polling import poll
from support.postgres import fresh_database
from support.quote_harness import submission
from support.replicas import quote_replica, quote_replicas

from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.postgres

Stub = pb_grpc.QuoteServiceStub


def keyed(name: str, key: str) -> pb.SubmitQuoteRequest:
    return pb.SubmitQuoteRequest(submission=submission(name), fairness_key=key)


async def accepted(stub: Stub, requests: Sequence[pb.SubmitQuoteRequest]) -> list[str]:
    answer = await stub.BatchSubmitQuotes(pb.BatchSubmitQuotesRequest(requests=requests))
    return [response.message.id for response in answer.responses]


async def read(stub: Stub, message_id: str) -> pb.QueueMessage:
    return (await stub.GetMessage(pb.GetMessageRequest(id=message_id))).message


async def all_final(stub: Stub, ids: Sequence[str]) -> list[pb.QueueMessage]:
    final = {pb.MESSAGE_STATUS_COMPLETED, pb.MESSAGE_STATUS_FAILED, pb.MESSAGE_STATUS_CANCELLED}
    return [
        await poll(lambda i=message_id: read(stub, i), lambda m: m.status in final, message_id)
        for message_id in ids
    ]


def seconds(stamp: Timestamp) -> float:
    return stamp.ToNanoseconds() / 1e9


async def test_keys_accepted_on_different_replicas_take_turns() -> None:
    # A's burst and B's few are accepted by two replicas with no worker, then
    # priced by the one worker of a third, so the order they started in is
    # the order served, whatever the machine's pace.
    async with fresh_database() as url, quote_replicas(url, [0, 0]) as running:
        (_, first), (_, second) = running
        a_ids = await accepted(first, [keyed(f"a{n}", "A") for n in range(200)])
        b_ids = await accepted(second, [keyed(f"b{n}", "B") for n in range(5)])
        async with quote_replica(url, 1):
            done = await all_final(second, a_ids + b_ids)
        assert {m.status for m in done} == {pb.MESSAGE_STATUS_COMPLETED}
        names = [
            m.payload.applicant_name for m in sorted(done, key=lambda m: seconds(m.started_at))
        ]
        # Each of B's waits behind at most one of A's, counted from the B before it.
        since = 0
        for n in range(5):
            b = names.index(f"b{n}")
            assert b - since <= 1, names[:12]
            since = b + 1
        # Then the rest of A's, in their order.
        assert names[since:] == [f"a{n}" for n in range(since - 5, 200)]


async def test_the_cap_per_key_holds_over_replicas_together() -> None:
    cap = ("--max-processing-per-key", "2")
    async with fresh_database() as url, quote_replicas(url, [4, 4], *cap) as running:
        (_, first), (_, second) = running
        # "slow" attempts never end, so a key's attempts at once only grow.
        slow = await accepted(first, [keyed(f"slow-a{n}", "A") for n in range(3)])
        slow += await accepted(second, [keyed(f"slow-a{n}", "A") for n in range(3, 6)])
        others = await accepted(second, [keyed(f"b{n}", "B") for n in range(3)])
        done = await all_final(first, others)
        assert {m.status for m in done} == {pb.MESSAGE_STATUS_COMPLETED}
        # Eight workers were free for six of A's, and two of them started.
        statuses = sorted([pb.MessageStatus.Name((await read(first, i)).status) for i in slow])
        assert statuses == ["MESSAGE_STATUS_PENDING"] * 4 + ["MESSAGE_STATUS_PROCESSING"] * 2
        stats = await second.GetStats(pb.GetStatsRequest())
        assert [(k.fairness_key, k.pending_count) for k in stats.busiest_keys] == [("A", 4)]


async def test_a_rate_limit_set_on_one_replica_holds_on_every_replica() -> None:
    per_second, burst, count = 20.0, 5, 65
    async with fresh_database() as url, quote_replicas(url, [2, 2]) as running:
        (_, first), (_, second) = running
        limit = pb.SetRateLimitRequest(fairness_key="R", per_second=per_second, burst=burst)
        await first.SetRateLimit(limit)
        limited = await accepted(first, [keyed(f"r{n}", "R") for n in range(count // 2)])
        limited += await accepted(second, [keyed(f"r{n}", "R") for n in range(count // 2, count)])
        other = await accepted(second, [keyed("other", "")])
        (priced_other,) = await all_final(first, other)
        limited_done = await all_final(second, limited)
        # Over its limit, the key waited: none failed, none was retried.
        assert {(m.status, m.retry_count) for m in limited_done} == {
            (pb.MESSAGE_STATUS_COMPLETED, 0)
        }
        starts = sorted(seconds(m.started_at) for m in limited_done)
        # The burst at once, then per_second: within 10 % of the time that takes.
        expected = (count - burst) / per_second
        assert 0.9 * expected <= starts[-1] - starts[0] <= 1.1 * expected, starts
        # The other key went on meanwhile, not behind the limited backlog.
        assert seconds(priced_other.started_at) < starts[len(starts) // 2]


async def test_a_message_scheduled_on_one_replica_is_priced_by_one_started_after() -> None:
    async with fresh_database() as url, quote_replicas(url, [0, 1]) as running:
        (_, accepting), (pricing, on_pricing) = running
        later = pb.SubmitQuoteRequest(submission=submission("Later"), delay=Duration(seconds=2))
        scheduled = (await accepting.SubmitQuote(later)).message
        far = pb.SubmitQuoteRequest(submission=submission("Far"), delay=Duration(seconds=3600))
        cancelled = (await accepting.SubmitQuote(far)).message
        shown = await read(on_pricing, scheduled.id)
        assert shown.status == pb.MESSAGE_STATUS_PENDING
        assert shown.schedule_time == scheduled.schedule_time
        assert seconds(shown.schedule_time) - seconds(shown.created_at) == pytest.approx(
            2, abs=0.01
        )
        await on_pricing.CancelMessage(pb.CancelMessageRequest(id=cancelled.id))
        await pricing.stop(signal.SIGKILL)
        # The only worker is gone before the message is due; one started
        # afterwards finds it in the store and prices it, not before its time.
        async with quote_replica(url, 1):
            (done,) = await all_final(accepting, [scheduled.id])
        assert done.status == pb.MESSAGE_STATUS_COMPLETED
        assert seconds(done.started_at) >= seconds(done.schedule_time)
        gone = await read(accepting, cancelled.id)
        assert gone.status == pb.MESSAGE_STATUS_CANCELLED and not gone.HasField("started_at")
