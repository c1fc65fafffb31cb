"""ProcessorService over real gRPC, pricing through a real quote service, both in-process."""

import asyncio
import socket

import grpc
import pytest
from support import health_probe
from support.processor_harness import ProcessorHarness
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import field_violations, reason

from processor_svc.event_entries import EVENTS, proposal_body, proposal_key
from processor_svc.stored_orders import PROPOSALS
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

NEW = pb.ORDER_EVENT_KIND_PROPOSAL_NEW
FAILED = pb.ORDER_EVENT_KIND_PROPOSAL_FAILED
COMPLETED = pb.ORDER_EVENT_KIND_ORDER_COMPLETED
READY_NAME = "quoteflow.processor.v1.ProcessorService"


async def propose(processor: ProcessorHarness, order: str, proposal: str, **fields: object):
    sub = fields.pop("submission", submission(f"{order}-{proposal}"))
    request = pb.SubmitProposalRequest(
        order_req_id=order, proposal_id=proposal, submission=sub, **fields
    )
    return await processor.stub.SubmitProposal(request)


async def watch(processor: ProcessorHarness, order: str, after: int = 0) -> list[pb.OrderEvent]:
    request = pb.WatchOrderRequest(order_req_id=order, after_sequence=after)
    return [r.event async for r in processor.stub.WatchOrder(request)]


async def test_proposals_are_priced_then_streamed_and_completion_comes_last(processor):
    for proposal in ("P1", "P2", "P3"):
        answer = await propose(processor, "ORD1", proposal)
        assert (answer.order_req_id, answer.proposal_id, answer.duplicate) == (
            "ORD1",
            proposal,
            False,
        )
    completed = await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="ORD1"))
    assert (completed.event.kind, completed.event.sequence) == (COMPLETED, 4)
    events = await watch(processor, "ORD1")
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert [e.kind for e in events] == [NEW, NEW, NEW, COMPLETED]
    assert sorted(e.text for e in events[:3]) == ["P1/New", "P2/New", "P3/New"]
    assert events[3].text == "ORD1/Completed"
    for event in events[:3]:
        assert event.quote.status == quote_pb.MESSAGE_STATUS_COMPLETED
        assert event.quote.result.annual_premium_cents > 0
        assert event.created_at.ToNanoseconds() > 0


async def test_a_proposals_quote_is_fair_under_its_key_or_else_its_orders(processor):
    await propose(processor, "ORD-K", "P1")
    await propose(processor, "ORD-K", "P2", fairness_key="broker-9")
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="ORD-K"))
    events = await watch(processor, "ORD-K")
    keys = {e.proposal_id: e.quote.fairness_key for e in events if e.kind == NEW}
    assert keys == {"P1": "ORD-K", "P2": "broker-9"}


async def test_a_repeat_with_another_fairness_key_is_another_request(processor):
    await propose(processor, "ORD-R", "P1", request_id="r-1")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await propose(processor, "ORD-R", "P1", request_id="r-1", fairness_key="other")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_every_watcher_gets_every_event(processor):
    first = asyncio.create_task(watch(processor, "FAN"))
    second = asyncio.create_task(watch(processor, "FAN"))
    for proposal in ("A", "B"):
        await propose(processor, "FAN", proposal)
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="FAN"))
    one, two = await first, await second
    assert [e.sequence for e in one] == [e.sequence for e in two] == [1, 2, 3]
    assert [e.text for e in one] == [e.text for e in two]


async def test_a_watcher_resuming_from_its_cursor_misses_nothing_and_repeats_nothing(processor):
    for proposal in ("A", "B", "C"):
        await propose(processor, "RES", proposal)
    request = pb.WatchOrderRequest(order_req_id="RES")
    seen = []
    call = processor.stub.WatchOrder(request)
    async for response in call:
        seen.append(response.event)
        if len(seen) == 2:
            call.cancel()
            break
    await propose(processor, "RES", "D")
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="RES"))
    seen += await watch(processor, "RES", after=seen[-1].sequence)
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    assert len({e.proposal_id for e in seen[:4]}) == 4


async def test_the_same_proposal_twice_produces_one_event(processor):
    assert not (await propose(processor, "DUP", "P1")).duplicate
    assert (await propose(processor, "DUP", "P1")).duplicate
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="DUP"))
    assert [e.text for e in await watch(processor, "DUP")] == ["P1/New", "DUP/Completed"]


async def test_a_proposal_whose_quote_fails_still_produces_an_event(quote, processor):
    quote.rating.failures["BAD-P1"] = 1
    await propose(processor, "BAD", "P1")
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="BAD"))
    failed, completed = await watch(processor, "BAD")
    assert (failed.kind, failed.text) == (FAILED, "P1/Failed")
    assert "ended FAILED" in failed.error_message
    assert "rating backend refused BAD-P1" in failed.error_message
    assert completed.kind == COMPLETED


async def test_bad_input_names_each_field_and_the_quote_services_checks_pass_through(processor):
    with pytest.raises(grpc.aio.AioRpcError) as bad_ids:
        await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(order_req_id="", proposal_id="x" * 129)
        )
    assert set(field_violations(bad_ids.value)) == {"order_req_id", "proposal_id", "submission"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_submission:
        await propose(processor, "ORD", "P", submission=submission("Ada", coverage=0))
    assert bad_submission.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad_submission.value)) == {"submission.coverage_amount"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_cursor:
        await watch(processor, "ORD", after=-1)
    assert set(field_violations(bad_cursor.value)) == {"after_sequence"}


async def test_a_cursor_beyond_the_log_is_out_of_range(processor):
    await propose(processor, "SHORT", "P1")
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="SHORT"))
    with pytest.raises(grpc.aio.AioRpcError) as beyond:
        await watch(processor, "SHORT", after=5)
    assert beyond.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert reason(beyond.value) == "CURSOR_OUT_OF_RANGE"


async def test_a_completed_order_refuses_new_proposals(processor):
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="DONE"))
    again = await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="DONE"))
    assert again.event.sequence == 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await propose(processor, "DONE", "late")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_stats_count_orders_events_and_watchers(processor):
    for order, proposals in (("S1", 3), ("S2", 1)):
        for n in range(proposals):
            await propose(processor, order, f"P{n}")
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="S1"))
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="S2"))
    open_watch = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id="S3"))
    await processor.stub.SubmitProposal(
        pb.SubmitProposalRequest(order_req_id="S3", proposal_id="P0", submission=submission())
    )
    await anext(aiter(open_watch))
    stats = await processor.stub.GetStats(pb.GetStatsRequest())
    assert stats.order_queues_count == 3
    assert dict(stats.events_by_order) == {"S1": 4, "S2": 2, "S3": 1}
    assert stats.events_count == 7
    assert stats.watchers_count == 1
    assert stats.proposals_in_flight == 0
    assert stats.awaited_orders_count == 0
    open_watch.cancel()


async def test_stats_stay_small_whatever_the_number_of_orders(processor):
    logs = processor.processor.orders.logs

    async def priced(order: str, proposal_id: str) -> None:
        await logs.append(PROPOSALS, order, proposal_id, {"handle": "Q"}, now=0.0)
        body = proposal_body(proposal_id, None, "unpriced")
        await logs.append(EVENTS, order, proposal_key(proposal_id), body, now=0.0)

    for n in range(2000):
        await priced(f"{n:05d}".ljust(128, "x"), "P1")
    for busy in ("B" * 128, "A" * 128):
        await priced(busy, "P2")
        await priced(busy, "P3")
    stats = await processor.stub.GetStats(pb.GetStatsRequest())
    assert (stats.order_queues_count, stats.events_count) == (2002, 2004)
    assert len(stats.events_by_order) == 100
    assert (stats.events_by_order["A" * 128], stats.events_by_order["B" * 128]) == (2, 2)
    # 100 ids of 128 characters and their counts, whatever the number of orders.
    assert stats.ByteSize() < 100 * (128 + 16) + 100


async def test_completed_orders_are_removed_after_their_retention(quote, start_processor):
    processor = await start_processor(
        quote.server.address, completed_retention=0.0, cleanup_interval=0.01
    )
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="OLD"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (await processor.stub.GetStats(pb.GetStatsRequest())).order_queues_count:
        assert loop.time() < deadline, "the completed order was never removed"
        await asyncio.sleep(0.01)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_quote_service_that_is_down_is_unavailable_by_name(start_processor):
    address = f"127.0.0.1:{_unused_port()}"
    processor = await start_processor(address, call_deadline=1.0)
    with pytest.raises(grpc.aio.AioRpcError) as down:
        await propose(processor, "ORD", "P1")
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"quote service at {address}" in down.value.details()
    assert reason(down.value) == "DOWNSTREAM_UNAVAILABLE"
    await health_probe.becomes(processor.channel, READY_NAME, health_probe.NOT_SERVING)
    assert await health_probe.check(processor.channel, "") == health_probe.SERVING
    # Nothing was accepted: the same proposal goes through once the quote service is back.
    assert (await processor.stub.GetStats(pb.GetStatsRequest())).proposals_in_flight == 0


async def test_readiness_follows_the_quote_service(start_quote, start_processor):
    quote: QuoteHarness = await start_quote()
    processor = await start_processor(quote.server.address)
    await health_probe.becomes(processor.channel, READY_NAME, health_probe.SERVING)
    await quote.server.set_ready(False)
    await health_probe.becomes(processor.channel, READY_NAME, health_probe.NOT_SERVING)
    assert await health_probe.check(processor.channel, "") == health_probe.SERVING
    await quote.server.set_ready(True)
    await health_probe.becomes(processor.channel, READY_NAME, health_probe.SERVING)


async def test_one_request_id_sent_a_hundred_times_at_once_is_one_proposal(processor):
    request = pb.SubmitProposalRequest(
        order_req_id="IDEM", proposal_id="P1", submission=submission(), request_id="req-1"
    )
    answers = await asyncio.gather(*(processor.stub.SubmitProposal(request) for _ in range(100)))
    assert sorted(a.duplicate for a in answers) == [False] + [True] * 99
    other = pb.SubmitProposalRequest(
        order_req_id="IDEM", proposal_id="P2", submission=submission(), request_id="req-1"
    )
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await processor.stub.SubmitProposal(other)
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="IDEM"))
    assert [e.text for e in await watch(processor, "IDEM")] == ["P1/New", "IDEM/Completed"]
