"""The requestor against the real processor (and a quote service), all in-process:
an expired order ends its task naming it, and a watch refused while too many
orders that have not started are watched is tried again until it is taken."""

import contextlib
from collections.abc import AsyncIterator

import pytest
from support.polling import poll
from support.processor_harness import ProcessorHarness, processor_harness
from support.quote_harness import QuoteHarness, StartQuote, submission
from support.requestor_harness import (
    RequestorHarness,
    start_requestor_harness,
    stop_requestor_harness,
)

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb


@pytest.fixture
async def quote(start_quote: StartQuote) -> QuoteHarness:
    return await start_quote(workers=2, max_retries=0)


@contextlib.asynccontextmanager
async def requestor_of(processor: ProcessorHarness) -> AsyncIterator[RequestorHarness]:
    started: list[RequestorHarness] = []
    harness = await start_requestor_harness(started, processor.processor.server.address)
    try:
        yield harness
    finally:
        await stop_requestor_harness(harness)


async def propose(processor: ProcessorHarness, order: str, proposal: str) -> None:
    await processor.stub.SubmitProposal(
        processor_pb.SubmitProposalRequest(
            order_req_id=order, proposal_id=proposal, submission=submission()
        )
    )


async def test_a_task_for_an_expired_order_fails_naming_it(quote):
    options = {"completed_retention": 0.0, "cleanup_interval": 0.01}
    async with processor_harness(quote.server.address, **options) as processor:
        await propose(processor, "OLD", "P1")
        await processor.stub.CompleteOrder(processor_pb.CompleteOrderRequest(order_req_id="OLD"))

        async def removed() -> bool:
            return not await processor.processor.orders.exists("OLD")

        await poll(removed, bool, "the completed order removed")
        # As after a restart of the requestor: the order is followed from 0.
        async with requestor_of(processor) as requestor:
            placed = await requestor.place("OLD")
            result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_FAILED
    assert "has no order 'OLD' any more (it expired or was removed)" in result.error_message
    assert list(result.proposals) == []


async def test_a_watch_refused_for_the_awaited_orders_bound_is_tried_again(quote):
    async with (
        processor_harness(quote.server.address, max_awaited_orders=1) as processor,
        requestor_of(processor) as requestor,
    ):
        first = await requestor.place("FIRST")

        async def first_awaited() -> bool:
            return processor.processor.orders.watchers_count == 1

        await poll(first_awaited, bool, "FIRST awaited")
        second = await requestor.place("SECOND")
        # SECOND's watch is refused while FIRST holds the one place; once
        # SECOND has an event it is no longer an awaited order, and is taken.
        refused = await requestor.wait_result(
            second.task_id, lambda r: r.reconnects >= 1, "SECOND refused"
        )
        assert refused.status == pb.TASK_STATUS_QUEUED
        await propose(processor, "SECOND", "P1")
        await processor.stub.CompleteOrder(processor_pb.CompleteOrderRequest(order_req_id="SECOND"))
        result = await requestor.wait_final(second.task_id)
        assert result.status == pb.TASK_STATUS_SUCCEEDED
        assert [e.proposal_id for e in result.proposals] == ["P1"]
        assert (await requestor.result(first.task_id)).status == pb.TASK_STATUS_QUEUED
