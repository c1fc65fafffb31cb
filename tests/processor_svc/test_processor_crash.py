"""python -m processor_svc as a real process on a SQLite store, killed with SIGKILL
or stopped with SIGTERM, then restarted on the same database and port: every
accepted proposal gets exactly one event, and watchers resume without a gap."""

import asyncio
import contextlib
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from support.polling import poll
from support.quote_harness import submission
from support.service_process import Launched, run_to_exit, running_service

from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc

T = TypeVar("T")

NEW = pb.ORDER_EVENT_KIND_PROPOSAL_NEW
COMPLETED = pb.ORDER_EVENT_KIND_ORDER_COMPLETED
# Above 2,000,000 a quote waits for a reviewer: its proposal stays in flight.
REVIEWED_COVERAGE = 3_000_000


@contextlib.asynccontextmanager
async def processor_process(
    quote_address: str, data_dir: Path, port: int = 0
) -> AsyncIterator[tuple[Launched, pb_grpc.ProcessorServiceStub]]:
    args = ("--quote-address", quote_address, "--health-interval", "0.05")
    async with (
        running_service("processor_svc", *args, data_dir=data_dir, port=port) as service,
        grpc.aio.insecure_channel(service.address) as channel,
    ):
        yield service, pb_grpc.ProcessorServiceStub(channel)


@contextlib.asynccontextmanager
async def quote_process(
    data_dir: Path, port: int = 0
) -> AsyncIterator[tuple[Launched, quote_grpc.QuoteServiceStub]]:
    async with (
        running_service("quote_svc", data_dir=data_dir, port=port) as service,
        grpc.aio.insecure_channel(service.address) as channel,
    ):
        yield service, quote_grpc.QuoteServiceStub(channel)


def port_of(service: Launched) -> int:
    return int(service.address.rpartition(":")[2])


async def kill(service: Launched) -> None:
    service.process.kill()
    await service.process.wait()


async def propose(
    stub: pb_grpc.ProcessorServiceStub, order: str, proposal: str, coverage: int = 250_000
) -> pb.SubmitProposalResponse:
    return await stub.SubmitProposal(
        pb.SubmitProposalRequest(
            order_req_id=order,
            proposal_id=proposal,
            submission=submission(f"{order}-{proposal}", coverage),
        )
    )


async def watch(
    stub: pb_grpc.ProcessorServiceStub, order: str, after: int = 0
) -> list[pb.OrderEvent]:
    request = pb.WatchOrderRequest(order_req_id=order, after_sequence=after)
    return [response.event async for response in stub.WatchOrder(request)]


async def stats(stub: pb_grpc.ProcessorServiceStub) -> pb.GetStatsResponse:
    return await stub.GetStats(pb.GetStatsRequest())


async def approve_every_quote_awaiting_review(quote: quote_grpc.QuoteServiceStub) -> int:
    """Approve each quote AWAITING_REVIEW; returns how many there were."""
    awaiting = await quote.ListMessages(
        quote_pb.ListMessagesRequest(status=quote_pb.MESSAGE_STATUS_AWAITING_REVIEW, page_size=1000)
    )
    for message in awaiting.messages:
        await quote.ReviewQuote(
            quote_pb.ReviewQuoteRequest(
                id=message.id, decision=quote_pb.REVIEW_DECISION_APPROVE, reviewer="test"
            )
        )
    return len(awaiting.messages)


async def test_after_a_kill_watchers_resume_and_sequences_go_on(tmp_path):
    data = tmp_path / "processor"
    async with quote_process(tmp_path / "quote") as (quote, _):
        async with processor_process(quote.address, data) as (first, stub):
            for proposal in ("A", "B", "C"):
                await propose(stub, "ORD", proposal)
            await propose(stub, "DONE", "A")
            await stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="DONE"))
            seen: list[pb.OrderEvent] = []
            call = stub.WatchOrder(pb.WatchOrderRequest(order_req_id="ORD"))
            async for response in call:
                seen.append(response.event)
                if len(seen) == 2:
                    break
            call.cancel()
            await poll(lambda: stats(stub), lambda s: s.events_by_order["ORD"] == 3, "priced")
            await kill(first)

        async with processor_process(quote.address, data, port_of(first)) as (_, stub):
            resumed = asyncio.create_task(watch(stub, "ORD", after=seen[-1].sequence))
            for proposal in ("D", "E"):
                await propose(stub, "ORD", proposal)
            await stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="ORD"))
            seen += await resumed
            done = await watch(stub, "DONE")
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await propose(stub, "DONE", "B")

    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5, 6]
    assert sorted(e.proposal_id for e in seen[:3]) == ["A", "B", "C"]
    assert [e.proposal_id for e in seen[3:5]] == ["D", "E"]
    assert [e.kind for e in seen] == [NEW] * 5 + [COMPLETED]
    assert all(e.quote.result.annual_premium_cents > 0 for e in seen[:5])
    assert [(e.text, e.sequence) for e in done] == [("A/New", 1), ("DONE/Completed", 2)]
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_proposals_in_flight_at_a_kill_are_priced_once_after_the_restart(tmp_path):
    quote_data, data = tmp_path / "quote", tmp_path / "processor"
    async with contextlib.AsyncExitStack() as stack:
        quote, quote_stub = await stack.enter_async_context(quote_process(quote_data))
        first, stub = await stack.enter_async_context(processor_process(quote.address, data))
        for proposal in ("A", "B", "C"):
            await propose(stub, "BIG", proposal, REVIEWED_COVERAGE)
        await poll(
            lambda: quote_stub.GetStats(quote_pb.GetStatsRequest()),
            lambda s: s.awaiting_review_count == 3,
            "awaiting review",
        )
        # The quote service stops answering, then the processor dies and
        # restarts while the quote service is still away.
        quote.process.send_signal(signal.SIGSTOP)
        await kill(first)
        second, stub = await stack.enter_async_context(
            processor_process(quote.address, data, port_of(first))
        )
        recovered = next(r for r in second.log if r.get("msg") == "recovered")
        # The quote service dies too, and comes back on its database and port.
        await kill(quote)
        quote, quote_stub = await stack.enter_async_context(
            quote_process(quote_data, port_of(quote))
        )
        approved = await approve_every_quote_awaiting_review(quote_stub)
        await stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="BIG"))
        events = await watch(stub, "BIG")

    assert recovered["proposals_in_flight"] == 3
    assert approved == 3
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert sorted(e.text for e in events[:3]) == ["A/New", "B/New", "C/New"]
    assert all(e.quote.status == quote_pb.MESSAGE_STATUS_COMPLETED for e in events[:3])
    assert events[3].kind == COMPLETED


async def test_sigterm_under_load_loses_no_acknowledged_proposal(tmp_path):
    data = tmp_path / "processor"
    # Every other proposal waits for a reviewer, so the drain stops its pricing.
    coverages = {f"P{n:02d}": REVIEWED_COVERAGE if n % 2 else 250_000 for n in range(40)}
    async with quote_process(tmp_path / "quote") as (quote, quote_stub):
        async with processor_process(quote.address, data) as (first, stub):
            calls = {
                name: asyncio.create_task(propose(stub, "LOAD", name, coverage))
                for name, coverage in coverages.items()
            }
            await asyncio.wait(calls.values(), return_when=asyncio.FIRST_COMPLETED)
            first.process.send_signal(signal.SIGTERM)
            await asyncio.wait(calls.values())
            assert await first.process.wait() == 0
            await first.read_log_until("drained")

        async with processor_process(quote.address, data, port_of(first)) as (second, stub):
            recovered = next(r for r in second.log if r.get("msg") == "recovered")
            await approve_every_quote_awaiting_review(quote_stub)
            await stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id="LOAD"))
            events = await watch(stub, "LOAD")

    acknowledged = {name for name, call in calls.items() if not call.exception()}
    refused = [call.exception() for call in calls.values() if call.exception()]
    assert acknowledged
    assert all(
        isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAVAILABLE
        for error in refused
    ), refused
    reviewed = {name for name in acknowledged if coverages[name] == REVIEWED_COVERAGE}
    # Every proposal held for review was still in flight; a quickly priced one may
    # be too, if the drain stopped its pricing before its event was written.
    assert len(reviewed) <= recovered["proposals_in_flight"] <= len(acknowledged)
    per_proposal = Counter(e.proposal_id for e in events[:-1])
    assert set(per_proposal.values()) == {1}
    assert set(per_proposal) == acknowledged
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].kind == COMPLETED


# The core's stores, and an earlier release's journal, which is imported.
@pytest.mark.parametrize(
    "name", ["processor-logs.sqlite3", "processor-jobs.sqlite3", "processor.sqlite3"]
)
async def test_a_corrupt_database_is_refused_naming_it(tmp_path, name):
    database = tmp_path / name
    database.write_bytes(b"not a database " * 512)
    finished = await run_to_exit(
        sys.executable,
        "-m",
        "processor_svc",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    )
    assert finished.returncode == 1
    last = finished.stderr.decode().splitlines()[-1]
    assert last.startswith("quoteflow processor service cannot start: cannot open store")
    assert str(database) in last
    assert b'"serving"' not in finished.stderr
