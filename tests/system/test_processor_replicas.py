"""Processor replicas as real processes over one fresh PostgreSQL database: an
order is one gapless sequence whichever replica appends, watched on any; and
an order completes whole when the replica pricing its proposals is killed,
its pricing taken over once the leases expire."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from support.polling import poll
from support.postgres import fresh_database
from support.quote_harness import submission
from support.replicas import LEASES, quote_replica
from support.service_process import Launched, running_service

from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.processor.v1 import processor_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def processors(
    url: str, quote_address: str, count: int
) -> AsyncIterator[list[tuple[Launched, pb_grpc.ProcessorServiceStub]]]:
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for _ in range(count):
            service = await stack.enter_async_context(
                running_service(
                    "processor_svc",
                    "--store",
                    "postgres",
                    "--quote-address",
                    quote_address,
                    *LEASES,
                    # Longer than a takeover: a proposal whose pricing is taken
                    # over is priced, not withdrawn.
                    "--completion-wait",
                    "30",
                    PROCESSOR_DATABASE_URL=url,
                )
            )
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(service.address))
            started.append((service, pb_grpc.ProcessorServiceStub(channel)))
        yield started


async def propose(stub: pb_grpc.ProcessorServiceStub, order: str, proposal: str) -> None:
    await stub.SubmitProposal(
        pb.SubmitProposalRequest(
            order_req_id=order, proposal_id=proposal, submission=submission(f"paced-{proposal}")
        )
    )


async def events(
    stub: pb_grpc.ProcessorServiceStub, order: str, after: int = 0, stop_at: int = 0
) -> list[pb.OrderEvent]:
    """The order's events after after, to its completion or to seq stop_at."""
    call = stub.WatchOrder(
        pb.WatchOrderRequest(order_req_id=order, after_sequence=after), timeout=60
    )
    streamed = []
    async for answer in call:
        streamed.append(answer.event)
        if answer.event.sequence == stop_at:
            break
    call.cancel()
    return streamed


async def test_an_order_is_one_sequence_whichever_replica_appends_or_watches() -> None:
    async with (
        fresh_database() as quotes,
        fresh_database() as orders,
        quote_replica(quotes, 2) as quoting,
        processors(orders, quoting.address, 2) as running,
    ):
        (_, first), (_, second) = running
        # Watched on one replica from before the order exists.
        watching = asyncio.create_task(events(second, "ORD"))
        for n in range(10):
            await propose((first, second)[n % 2], "ORD", f"P{n}")
        done = await first.CompleteOrder(pb.CompleteOrderRequest(order_req_id="ORD"))
        streamed = await asyncio.wait_for(watching, 60)

        assert [e.sequence for e in streamed] == list(range(1, 12))
        assert streamed[-1] == done.event
        assert done.event.kind == pb.ORDER_EVENT_KIND_ORDER_COMPLETED
        assert {e.proposal_id for e in streamed[:-1]} == {f"P{n}" for n in range(10)}
        assert {e.kind for e in streamed[:-1]} == {pb.ORDER_EVENT_KIND_PROPOSAL_NEW}
        # Resumed from a cursor on the other replica: the same events after it.
        assert await events(first, "ORD", after=6) == streamed[6:]
        stats = [await stub.GetStats(pb.GetStatsRequest()) for stub in (first, second)]
        assert {(s.order_queues_count, s.events_count) for s in stats} == {(1, 11)}


async def test_an_order_completes_whole_when_the_replica_pricing_it_is_killed() -> None:
    async with (
        fresh_database() as quotes,
        fresh_database() as orders,
        quote_replica(quotes, 0) as accepting,
    ):
        async with processors(orders, accepting.address, 1) as [(victim, on_victim)]:
            # No quote worker runs yet, and no other replica: the victim holds
            # every proposal's pricing, waiting on its quote, when it dies.
            for n in range(20):
                await propose(on_victim, "ORD", f"P{n}")
            # A proposal is answered once recorded; its pricing is claimed after.
            database = await asyncpg.connect(orders)
            try:
                await poll(
                    lambda: database.fetchval(
                        "SELECT count(*) FROM jobs"
                        " WHERE queue = 'proposal-pricing' AND state = 'running'"
                    ),
                    lambda running: running == 20,
                    "the victim holding every pricing",
                )
            finally:
                await database.close()
            victim.process.send_signal(signal.SIGKILL)
            await victim.process.wait()

        async with (
            processors(orders, accepting.address, 1) as [(_, survivor)],
            quote_replica(quotes, 2),
        ):
            # Priced by the survivor's takeover alone, before any completion.
            priced = await events(survivor, "ORD", stop_at=20)
            done = await survivor.CompleteOrder(pb.CompleteOrderRequest(order_req_id="ORD"))
            streamed = await events(survivor, "ORD")

        assert [e.sequence for e in streamed] == list(range(1, 22))
        assert streamed[:-1] == priced
        assert streamed[-1] == done.event
        assert [e.kind for e in streamed[:-1]] == [pb.ORDER_EVENT_KIND_PROPOSAL_NEW] * 20
        assert sorted(e.proposal_id for e in streamed[:-1]) == sorted(f"P{n}" for n in range(20))
        database = await asyncpg.connect(orders)
        try:
            attempts = await database.fetch(
                "SELECT attempt FROM jobs WHERE queue = 'proposal-pricing'"
            )
        finally:
            await database.close()
        # Each was claimed by the victim, then taken over: two attempts.
        assert sorted(row["attempt"] for row in attempts) == [2] * 20
