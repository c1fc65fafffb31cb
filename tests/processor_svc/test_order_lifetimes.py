"""What calls leave behind: refused calls and watchers of unknown orders
nothing; a removed order's id answers NOT_FOUND (ORDER_EXPIRED) for a while,
after a restart too."""

import grpc
import pytest
from google.rpc import error_details_pb2
from support.polling import poll
from support.processor_harness import ProcessorHarness, processor_harness
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import details, reason

from quoteflow.processor.v1 import processor_service_pb2 as pb


async def order_count(processor: ProcessorHarness) -> int:
    return (await processor.processor.orders.stats(busiest=0)).orders


async def test_watchers_of_unknown_orders_leave_nothing_once_they_disconnect(processor):
    calls = [
        processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id=f"GHOST-{n}"))
        for n in range(200)
    ]

    async def all_waiting() -> bool:
        return processor.processor.orders.watchers_count == len(calls)

    await poll(all_waiting, bool, "every watcher is waiting")
    for call in calls:
        call.cancel()

    async def none_left() -> bool:
        return processor.processor.orders.watchers_count == 0

    await poll(none_left, bool, "every watcher has gone")
    assert await order_count(processor) == 0


async def test_a_refused_call_creates_nothing(processor):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(
                order_req_id="REFUSED", proposal_id="P1", submission=submission("Ada", coverage=0)
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await order_count(processor) == 0
    assert not await processor.processor.orders.exists("REFUSED")
    # Nothing of it lingers in the desk either: the order can be completed empty.
    done = await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="REFUSED"))
    assert done.event.sequence == 1


async def test_watching_too_many_unknown_orders_at_once_is_refused_with_a_retry_hint(
    quote: QuoteHarness, start_processor
):
    processor = await start_processor(quote.server.address, max_awaited_orders=1)
    waiting = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id="FIRST"))

    async def first_waits() -> bool:
        return processor.processor.orders.watchers_count == 1

    await poll(first_waits, bool, "the first watcher waits")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await anext(aiter(processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id="SECOND"))))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(refused.value) == "WATCH_LIMIT_REACHED"
    retry = details(refused.value)[error_details_pb2.RetryInfo]
    assert retry.retry_delay.ToTimedelta().total_seconds() > 0
    waiting.cancel()


async def expect_expired(call) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await call
    assert expired.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(expired.value) == "ORDER_EXPIRED"
    assert "was removed" in expired.value.details()


async def first_event(processor: ProcessorHarness, order: str, after: int = 0) -> pb.OrderEvent:
    call = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id=order, after_sequence=after))
    response = await anext(aiter(call))
    call.cancel()
    return response.event


async def test_an_expired_order_answers_not_found_also_after_a_restart(quote, tmp_path):
    options = {
        "completed_retention": 0.0,
        "cleanup_interval": 0.01,
        "store": "sqlite",
        "data_dir": str(tmp_path),
    }
    async with processor_harness(quote.server.address, **options) as processor:
        await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(order_req_id="OLD", proposal_id="P1", submission=submission())
        )
        await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="OLD"))

        async def removed() -> bool:
            return not await processor.processor.orders.exists("OLD")

        await poll(removed, bool, "the completed order is removed")
        await expect_expired(first_event(processor, "OLD"))
        await expect_expired(first_event(processor, "OLD", after=2))
    async with processor_harness(quote.server.address, **options) as processor:
        await expect_expired(first_event(processor, "OLD"))
        await expect_expired(
            processor.stub.SubmitProposal(
                pb.SubmitProposalRequest(
                    order_req_id="OLD", proposal_id="P2", submission=submission()
                )
            )
        )
        await expect_expired(
            processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="OLD"))
        )
        assert await order_count(processor) == 0
