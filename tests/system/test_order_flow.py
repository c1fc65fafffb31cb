"""All three services together, in-process on port 0, talking only through their stubs."""

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.polling import poll
from support.processor_harness import processor_harness
from support.quote_harness import StartQuote, submission
from support.requestor_harness import (
    RequestorHarness,
    start_requestor_harness,
    stop_requestor_harness,
)
from support.service_process import run_to_exit

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb

DEMO = Path(__file__).resolve().parents[2] / "tools" / "demo.py"


@pytest.fixture
async def start_requestor() -> AsyncIterator[object]:
    started: list[RequestorHarness] = []

    async def start(processor_address: str, **overrides: object) -> RequestorHarness:
        return await start_requestor_harness(started, processor_address, **overrides)

    yield start
    for harness in started:
        await stop_requestor_harness(harness)


async def test_place_propose_complete_and_the_task_has_every_quote(start_quote, start_requestor):
    quote = await start_quote(workers=2)
    async with processor_harness(quote.server.address) as processor:
        requestor = await start_requestor(processor.processor.server.address)
        placed = await requestor.place("ORD-FLOW", priority=pb.TASK_PRIORITY_HIGH)
        # No event yet: the task waits for the order's first one without a slot.
        await poll(requestor.waiting_tasks, lambda n: n == 1, "waiting for the order")
        coverages = {"PROP-S": 80_000, "PROP-M": 400_000, "PROP-L": 1_500_000}
        for proposal_id, coverage in coverages.items():
            await processor.stub.SubmitProposal(
                processor_pb.SubmitProposalRequest(
                    order_req_id="ORD-FLOW",
                    proposal_id=proposal_id,
                    submission=submission(proposal_id, coverage),
                )
            )
        await processor.stub.CompleteOrder(
            processor_pb.CompleteOrderRequest(order_req_id="ORD-FLOW")
        )
        result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert [e.sequence for e in result.proposals] == [1, 2, 3]
    assert result.last_sequence == 4
    by_proposal = {e.proposal_id: e for e in result.proposals}
    assert set(by_proposal) == set(coverages)
    for proposal_id, event in by_proposal.items():
        assert event.text == f"{proposal_id}/New"
        assert event.quote.status == quote_pb.MESSAGE_STATUS_COMPLETED
        assert event.quote.payload.coverage_amount == coverages[proposal_id]
        assert event.quote.result.annual_premium_cents > 0
    # Bigger cover costs more: each quote really is the quote service's pricing.
    premiums = [by_proposal[p].quote.result.annual_premium_cents for p in coverages]
    assert premiums == sorted(premiums)


async def test_a_processor_restart_mid_order_neither_crashes_nor_hangs_the_requestor(
    start_quote: StartQuote, start_requestor
):
    quote = await start_quote()
    async with contextlib.AsyncExitStack() as stack:
        processor = await stack.enter_async_context(processor_harness(quote.server.address))
        port = processor.processor.server.port
        requestor = await start_requestor(f"127.0.0.1:{port}", reconnect_backoff_cap=0.2)
        placed = await requestor.place("ORD-RESTART")
        await processor.stub.SubmitProposal(
            processor_pb.SubmitProposalRequest(
                order_req_id="ORD-RESTART", proposal_id="P1", submission=submission()
            )
        )
        await requestor.wait_result(placed.task_id, lambda r: r.last_sequence == 1, "event 1")
        await stack.aclose()

        # The new processor has lost the order's events (they lived in memory):
        # the requestor's cursor (1) is beyond its log.
        async with processor_harness(quote.server.address, port=port):
            result = await requestor.wait_final(placed.task_id)
            assert result.status == pb.TASK_STATUS_FAILED
            assert "lost the events of order 'ORD-RESTART'" in result.error_message
            assert [e.text for e in result.proposals] == ["P1/New"]
            # The requestor goes on serving: a new order on the new processor works.
            again = await requestor.place("ORD-AFTER")
            stats = await requestor.stub.GetStats(pb.GetStatsRequest())
            assert stats.completed_tasks == 1
            assert again.task_id != placed.task_id


async def test_make_demo_runs_the_flow_against_running_services(start_quote, start_requestor):
    quote = await start_quote(workers=2)
    async with processor_harness(quote.server.address) as processor:
        processor_address = processor.processor.server.address
        requestor = await start_requestor(processor_address)
        finished = await run_to_exit(
            sys.executable,
            str(DEMO),
            "--processor",
            processor_address,
            "--requestor",
            requestor.requestor.server.address,
        )
    assert finished.returncode == 0, finished.stderr.decode()
    text = finished.stdout.decode()
    assert "SUCCEEDED, 3 proposals" in text
    for proposal in ("PROP-S/New", "PROP-M/New", "PROP-L/New"):
        assert proposal in text


async def test_an_order_completed_while_a_quote_awaits_review_ends_its_task(
    start_quote, start_requestor
):
    quote = await start_quote(workers=2)
    # A completion wait no test outlasts: only the review lets the completion go on.
    async with processor_harness(quote.server.address, completion_wait=3600.0) as processor:
        requestor = await start_requestor(processor.processor.server.address)
        placed = await requestor.place("ORD-REVIEW", submission=submission())
        for proposal_id, coverage in (("PROP-HUGE", 3_000_000), ("PROP-S", 80_000)):
            await processor.stub.SubmitProposal(
                processor_pb.SubmitProposalRequest(
                    order_req_id="ORD-REVIEW",
                    proposal_id=proposal_id,
                    submission=submission(proposal_id, coverage),
                )
            )
        await requestor.wait_result(placed.task_id, lambda r: r.last_sequence >= 1, "event 1")
        done = await processor.stub.CompleteOrder(
            processor_pb.CompleteOrderRequest(order_req_id="ORD-REVIEW"), timeout=30.0
        )
        result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_SUCCEEDED
    assert result.last_sequence == done.event.sequence == 3
    by_proposal = {e.proposal_id: e for e in result.proposals}
    assert by_proposal["PROP-S"].text == "PROP-S/New"
    assert by_proposal["PROP-HUGE"].text == "PROP-HUGE/Failed"
    assert by_proposal["PROP-HUGE"].error_message.startswith("withdrawn:")


async def test_a_task_following_an_order_that_has_expired_ends_with_a_clear_error(
    start_quote, start_requestor
):
    quote = await start_quote()
    async with processor_harness(quote.server.address) as processor:
        await processor.stub.CompleteOrder(
            processor_pb.CompleteOrderRequest(order_req_id="ORD-GONE")
        )
        # As the retention sweep does, without waiting an hour for it.
        assert await processor.processor.orders.remove("ORD-GONE")
        requestor = await start_requestor(processor.processor.server.address)
        placed = await requestor.place("ORD-GONE", submission=submission())
        result = await requestor.wait_final(placed.task_id)
    assert result.status == pb.TASK_STATUS_FAILED
    assert "has no order 'ORD-GONE' any more" in result.error_message
