"""Requestor replicas as real processes over one fresh PostgreSQL database,
following a scripted processor: a task whose replica is killed resumes on
another from its saved cursor, and priority order holds across replicas."""

import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator

import grpc
import pytest
from support.polling import poll
from support.postgres import fresh_database
from support.replicas import LEASES
from support.requestor_harness import FakeProcessorServer, RequestorClient
from support.service_process import Launched, running_service

from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.postgres


@dataclasses.dataclass
class Replica(RequestorClient):
    launched: Launched


@contextlib.asynccontextmanager
async def replica(url: str, processor: str, *args: str) -> AsyncIterator[Replica]:
    async with (
        running_service(
            "requestor_svc",
            "--store",
            "postgres",
            "--processor-address",
            processor,
            *LEASES,
            *args,
            REQUESTOR_DATABASE_URL=url,
        ) as launched,
        grpc.aio.insecure_channel(launched.address) as channel,
    ):
        yield Replica(pb_grpc.RequestorServiceStub(channel), launched)


@pytest.fixture
async def processor() -> AsyncIterator[FakeProcessorServer]:
    server = FakeProcessorServer()
    await server.start()
    yield server
    await server.stop()


async def test_a_task_resumes_from_its_cursor_on_another_replica(
    processor: FakeProcessorServer,
) -> None:
    fake = processor.fake
    async with fresh_database() as url:
        async with replica(url, processor.address) as victim:
            placed = await victim.place("ORD")
            fake.propose("ORD", "P1")
            fake.propose("ORD", "P2")
            # The running attempt has saved its cursor (2) in the store.
            await victim.wait_result(placed.task_id, lambda r: r.last_sequence == 2, "at 2")
            victim.launched.process.send_signal(signal.SIGKILL)
            await victim.launched.process.wait()
        async with replica(url, processor.address) as survivor:
            fake.propose("ORD", "P3")
            fake.complete("ORD")
            done = await survivor.wait_final(placed.task_id)

    assert done.status == pb.TASK_STATUS_SUCCEEDED
    assert [e.proposal_id for e in done.proposals] == ["P1", "P2", "P3"]
    assert done.last_sequence == 4
    # The survivor opened the stream after the saved cursor, not from the start.
    assert fake.watched("ORD")[-1] == 2
    assert done.reconnects >= 1


async def test_a_freed_slot_on_any_replica_takes_the_highest_priority_task(
    processor: FakeProcessorServer,
) -> None:
    fake = processor.fake
    one_slot = ("--max-concurrent-tasks", "1")
    async with (
        fresh_database() as url,
        replica(url, processor.address, *one_slot) as first,
        replica(url, processor.address, *one_slot) as second,
    ):
        busy = [await first.place("BUSY-1"), await second.place("BUSY-2")]
        fake.propose("BUSY-1", "P")
        fake.propose("BUSY-2", "P")
        await first.wait_result(busy[0].task_id, is_running, "running")
        await first.wait_result(busy[1].task_id, is_running, "running")
        # Both slots of the cluster taken: these wait, started, in the queue.
        low = await second.place("LOW", priority=pb.TASK_PRIORITY_LOW)
        high = await first.place("HIGH", priority=pb.TASK_PRIORITY_HIGH)
        fake.propose("LOW", "P")
        fake.propose("HIGH", "P")
        await poll(
            lambda: first.stub.GetStats(pb.GetStatsRequest()),
            lambda s: (s.waiting_tasks, s.priority_queue_size, s.active_tasks) == (0, 2, 2),
            "both started and queued",
        )

        fake.complete("BUSY-2")
        await first.wait_result(high.task_id, is_running, "running")
        assert (await first.result(low.task_id)).status == pb.TASK_STATUS_QUEUED
        fake.complete("BUSY-1")
        await second.wait_result(low.task_id, is_running, "running")


def is_running(result: pb.TaskResult) -> bool:
    return result.status == pb.TASK_STATUS_RUNNING
