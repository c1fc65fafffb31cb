"""Quote replicas as real processes over one fresh PostgreSQL database: one
queue, whichever replica is called; and a replica killed with SIGKILL under
load loses nothing it acknowledged, its claims taken over once their leases
expire."""

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import psutil
import pytest
from support.polling import POLL_DEADLINE_SECONDS, poll
from support.postgres import fresh_database
from support.quote_harness import submission
from support.replicas import LEASES, TESTS, quote_replicas
from support.service_process import Launched, launch, python_env, service_argv

from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.postgres


async def watched_to_the_end(
    stub: pb_grpc.QuoteServiceStub, message_id: str, store: pb_grpc.QuoteServiceStub
) -> list[int]:
    """The statuses WatchMessage on stub shows until it ends at a final one. A
    watch that has not ended within the deadline fails, saying what it showed
    and what the store (read through another replica) holds meanwhile."""
    shown: list[int] = []
    try:
        async with asyncio.timeout(POLL_DEADLINE_SECONDS):
            async for answer in stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
                shown.append(answer.message.status)
    except TimeoutError:
        held = await store.GetMessage(pb.GetMessageRequest(id=message_id), timeout=10)
        raise AssertionError(
            f"the watch of {message_id} never ended: it showed "
            f"{[pb.MessageStatus.Name(s) for s in shown]}, and the store holds it "
            f"{pb.MessageStatus.Name(held.message.status)}"
        ) from None
    return shown


async def test_replicas_over_one_database_are_one_queue() -> None:
    # Every call has a deadline, so that a stall fails naming its step.
    deadline = POLL_DEADLINE_SECONDS
    async with fresh_database() as url, quote_replicas(url, [0, 1, 1]) as running:
        (_, api), (_, first), (_, second) = running
        # Accepted where no worker runs, priced elsewhere, watched on a third.
        queued = await api.SubmitQuote(
            pb.SubmitQuoteRequest(submission=submission("Ada")), timeout=deadline
        )
        watched = await watched_to_the_end(second, queued.message.id, store=api)
        assert watched[-1] == pb.MESSAGE_STATUS_COMPLETED

        # 100 concurrent repeats of one request, spread over the replicas, make one message.
        repeat = pb.SubmitQuoteRequest(submission=submission("Bo"), request_id="same-request")
        stubs = [api, first, second]
        answers = await asyncio.gather(
            *(stubs[n % 3].SubmitQuote(repeat, timeout=deadline) for n in range(100))
        )
        assert len({answer.message.id for answer in answers}) == 1

        await poll(
            lambda: api.GetStats(pb.GetStatsRequest()),
            lambda s: s.completed_count == 2,
            "both priced",
        )
        every = [await stub.GetStats(pb.GetStatsRequest(), timeout=deadline) for stub in stubs]
        assert {(s.completed_count, s.pending_count) for s in every} == {(2, 0)}


async def test_a_replica_killed_under_load_loses_nothing_it_acknowledged() -> None:
    async with fresh_database() as url, quote_replicas(url, [2, 2, 2]) as running:
        stubs = [stub for _, stub in running]
        acknowledged: list[str] = []
        # The ones the replica to be killed acknowledged: on a loaded machine
        # the other two can acknowledge the first 100 before it answers any.
        by_victim: list[str] = []

        async def submit(n: int) -> None:
            request = pb.SubmitQuoteRequest(submission=submission(f"paced-{n}"))
            stub = stubs[n % len(stubs)]
            # A call to the killed replica may fail: it was not acknowledged.
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await stub.SubmitQuote(request)
                acknowledged.append(answer.message.id)
                if stub is running[0][1]:
                    by_victim.append(answer.message.id)

        first = asyncio.gather(*(submit(n) for n in range(300)))
        await poll(
            lambda: (len(acknowledged), len(by_victim)),
            lambda counts: counts[0] >= 100 and counts[1] > 0,
            "100 acknowledged, some by the replica to be killed",
        )
        victim, _ = running[0]
        victim.process.send_signal(signal.SIGKILL)
        await victim.process.wait()
        await first
        stubs = stubs[1:]  # the survivors take the rest
        await asyncio.gather(*(submit(n) for n in range(300, 400)))

        survivor = stubs[0]
        await poll(
            lambda: survivor.GetStats(pb.GetStatsRequest()),
            lambda s: s.completed_count >= len(acknowledged) and s.processing_count == 0,
            "every acknowledged quote priced",
            within=60,
        )
        for message_id in acknowledged:
            got = await survivor.GetMessage(pb.GetMessageRequest(id=message_id))
            assert got.message.status == pb.MESSAGE_STATUS_COMPLETED, message_id
        stats = await survivor.GetStats(pb.GetStatsRequest())
        # A submission the victim committed but could not answer is priced too.
        assert len(acknowledged) <= stats.completed_count <= 400
        assert len(acknowledged) > 300
        assert (stats.pending_count, stats.failed_count) == (0, 0)


@contextlib.asynccontextmanager
async def worker_process(url: str, data_dir: Path) -> AsyncIterator[Launched]:
    """A quote process with --api false over url, once it works."""
    argv = service_argv(
        "quote_svc",
        "--store",
        "postgres",
        "--api",
        "false",
        "--workers",
        "2",
        "--processor",
        "support.quote_plugins:scripted",
        *LEASES,
        data_dir=data_dir,
    )
    worker = await launch(argv, name="quote worker", env=python_env(TESTS, QUOTE_DATABASE_URL=url))
    try:
        await worker.read_log_until("working")
        yield worker
    finally:
        await worker.stop(signal.SIGKILL)


async def test_a_worker_process_with_no_port_prices_what_a_replica_accepts(
    tmp_path: Path,
) -> None:
    async with (
        fresh_database() as url,
        quote_replicas(url, [0]) as [(_, api)],
        worker_process(url, tmp_path) as worker,
    ):
        listening = [
            c for c in psutil.Process(worker.pid).net_connections() if c.status == "LISTEN"
        ]
        assert listening == []
        queued = await api.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
        watched = [
            answer.message.status
            async for answer in api.WatchMessage(pb.WatchMessageRequest(id=queued.message.id))
        ]
        assert watched[-1] == pb.MESSAGE_STATUS_COMPLETED
        # SIGTERM drains it: it logs the drain and exits 0.
        assert await worker.stop(signal.SIGTERM) == 0
        assert await worker.read_log_until("drained")
