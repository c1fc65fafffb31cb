"""python -m requestor_svc killed (-9) or drained (SIGTERM) and started again on the
same data directory: nothing it acknowledged is lost. The processor it follows
is the scripted fake, served on a port, which outlives every requestor."""

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from support.requestor_harness import FakeProcessorServer, RequestorClient
from support.rpc_errors import reason
from support.service_process import Launched, run_to_exit, running_service

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from quoteflow.requestor.v1 import requestor_service_pb2_grpc as pb_grpc

HIGH, MEDIUM, LOW = pb.TASK_PRIORITY_HIGH, pb.TASK_PRIORITY_MEDIUM, pb.TASK_PRIORITY_LOW
#: One slot, and a short lease, so that the killed requestor's claim on its
#: running task runs out within the test (not after the default 30 s).
ONE_SLOT = ("--max-concurrent-tasks", "1", "--lease-seconds", "2", "--heartbeat-seconds", "0.5")


@contextlib.asynccontextmanager
async def requestor(
    processor: FakeProcessorServer, data_dir: Path, *args: str
) -> AsyncIterator[tuple[Launched, RequestorClient]]:
    """A requestor process keeping its tasks in data_dir, and a client for it."""
    async with (
        running_service(
            "requestor_svc",
            "--processor-address",
            processor.address,
            "--health-interval",
            "0.02",
            "--reconnect-backoff-base",
            "0.001",
            "--reconnect-backoff-cap",
            "0.01",
            *args,
            data_dir=data_dir,
        ) as service,
        grpc.aio.insecure_channel(service.address) as channel,
    ):
        yield service, RequestorClient(pb_grpc.RequestorServiceStub(channel))


def proposals_of(fake_events: list[processor_pb.OrderEvent]) -> list[processor_pb.OrderEvent]:
    return [e for e in fake_events if e.kind != processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED]


async def test_queued_and_running_tasks_run_to_success_after_a_kill(processor, fake, tmp_path):
    async with requestor(processor, tmp_path, *ONE_SLOT) as (service, client):
        running = await client.place("RUN", priority=MEDIUM)
        await fake.wait_watched("RUN", 1)
        fake.propose("RUN", "R1")
        await client.wait_result(running.task_id, lambda r: r.last_sequence == 1, "at 1")
        placed = {"RUN": running}
        for order, priority in [("LOW", LOW), ("HIGH", HIGH), ("MED", MEDIUM)]:
            placed[order] = await client.place(order, priority=priority)
        before = {order: await client.result(p.task_id) for order, p in placed.items()}
        assert [r.status for r in before.values()] == [pb.TASK_STATUS_RUNNING] + [
            pb.TASK_STATUS_QUEUED
        ] * 3
        assert await service.stop(signal.SIGKILL) == -signal.SIGKILL

    # While the requestor is down, every order completes.
    fake.propose("RUN", "R2")
    fake.propose("HIGH", "H1")
    fake.propose("MED", "M1")
    fake.propose("MED", "M2", failed=True)
    fake.propose("LOW", "L1")
    for order in placed:
        fake.complete(order)
    watched_before = len(fake.watches)

    async with requestor(processor, tmp_path, *ONE_SLOT) as (_, client):
        for order, p in placed.items():
            result = await client.wait_final(p.task_id)
            assert result.status == pb.TASK_STATUS_SUCCEEDED, result
            assert (result.task_id, result.order_req_id) == (p.task_id, order)
            assert (result.priority, result.created_at) == (
                before[order].priority,
                before[order].created_at,
            )
            # Every proposal exactly once, though RUN was followed by two processes.
            assert list(result.proposals) == proposals_of(fake.events[order])
    # RUN resumed from the cursor its attempt saved; each queued task waited
    # for its first event, then followed on from it. (Which takes the one slot
    # first is whichever order's first event comes back first; the order of
    # the rest is tested in-process.)
    again = [(w.order_req_id, w.after_sequence) for w in fake.watches[watched_before:]]
    queued = [order for order in placed if order != "RUN"]
    assert sorted(again) == sorted(
        [("RUN", 1)] + [(o, 0) for o in queued] + [(o, 1) for o in queued]
    )


async def test_finished_results_survive_a_kill(processor, fake, tmp_path):
    async with requestor(processor, tmp_path) as (service, client):
        submission = quote_pb.Submission(
            applicant_name="Ada", address="1 Road", coverage_amount=250_000
        )
        done = await client.place(
            "DONE",
            priority=HIGH,
            submission=submission,
            request_id="req-done",
            timeout=Duration(seconds=3600),
        )
        fake.propose("DONE", "P1")
        fake.propose("DONE", "P2", failed=True)
        fake.complete("DONE")

        cancelled = await client.place("CANCEL")
        fake.propose("CANCEL", "C1")
        await client.wait_result(cancelled.task_id, lambda r: r.last_sequence == 1, "at 1")
        await client.stub.CancelTask(pb.CancelTaskRequest(task_id=cancelled.task_id))

        failed = await client.place("FAIL")
        fake.propose("FAIL", "F1")
        await client.wait_result(failed.task_id, lambda r: r.last_sequence == 1, "at 1")
        fake.remove("FAIL")

        slow = await client.place("SLOW", timeout=Duration(nanos=300_000_000))
        fake.propose("SLOW", "S1")

        tasks = [done, cancelled, failed, slow]
        before = [await client.wait_final(t.task_id) for t in tasks]
        assert [r.status for r in before] == [
            pb.TASK_STATUS_SUCCEEDED,
            pb.TASK_STATUS_CANCELLED,
            pb.TASK_STATUS_FAILED,
            pb.TASK_STATUS_TIMED_OUT,
        ]
        assert [[e.proposal_id for e in r.proposals] for r in before] == [
            ["P1", "P2"],
            ["C1"],
            ["F1"],
            ["S1"],
        ]
        stats = await client.stats()
        assert await service.stop(signal.SIGKILL) == -signal.SIGKILL

    async with requestor(processor, tmp_path) as (_, client):
        assert [await client.result(t.task_id) for t in tasks] == before
        assert await client.stats() == stats
        # The request id came back with its task.
        again = await client.place(
            "DONE",
            priority=HIGH,
            submission=submission,
            request_id="req-done",
            timeout=Duration(seconds=3600),
        )
        assert again == done


async def test_a_drain_under_load_loses_nothing_acknowledged(processor, tmp_path):
    acknowledged: list[str] = []
    refusals: list[grpc.StatusCode] = []
    enough = asyncio.Event()

    async def keep_placing(client: RequestorClient, placer: int) -> None:
        for n in range(1_000_000):
            try:
                placed = await client.place(f"LOAD-{placer}-{n}")
            except grpc.aio.AioRpcError as error:
                refusals.append(error.code())
                return
            acknowledged.append(placed.task_id)
            if len(acknowledged) >= 100:
                enough.set()

    async with requestor(processor, tmp_path, "--grace-seconds", "5") as (service, client):
        placers = [asyncio.create_task(keep_placing(client, p)) for p in range(8)]
        await enough.wait()
        service.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*placers)
        assert await service.stop() == 0
        await service.read_log_until("drained")
    assert set(refusals) <= {grpc.StatusCode.UNAVAILABLE}

    async with requestor(processor, tmp_path) as (_, client):
        results = [await client.result(task_id) for task_id in acknowledged]
        # The ten that were running when it drained were handed back, not cancelled.
        assert {r.status for r in results} <= {pb.TASK_STATUS_QUEUED, pb.TASK_STATUS_RUNNING}
        queued, active, completed, _ = await client.stats()
        assert queued + active + completed >= len(acknowledged) == len(set(acknowledged))


async def test_a_request_id_places_one_task_before_and_after_a_restart(processor, tmp_path):
    request = pb.PlaceOrderRequest(
        order_req_id="ORD-1",
        request_id="req-1",
        submission=quote_pb.Submission(applicant_name="Ada", address="1 Road", coverage_amount=1),
    )
    async with requestor(processor, tmp_path) as (service, client):
        answers = await asyncio.gather(*(client.stub.PlaceOrder(request) for _ in range(100)))
        assert all(answer == answers[0] for answer in answers)
        queued, active, completed, _ = await client.stats()
        assert queued + active + completed == 1
        assert await service.stop(signal.SIGKILL) == -signal.SIGKILL

    async with requestor(processor, tmp_path) as (_, client):
        assert await client.stub.PlaceOrder(request) == answers[0]
        different = pb.PlaceOrderRequest(order_req_id="ORD-2", request_id="req-1")
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await client.stub.PlaceOrder(different)
        assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert reason(conflict.value) == "REQUEST_ID_REUSED"
        queued, active, completed, _ = await client.stats()
        assert queued + active + completed == 1


# The core's store, and an earlier release's journal, which is imported.
@pytest.mark.parametrize("name", ["requestor-jobs.sqlite3", "requestor.sqlite3"])
async def test_a_corrupt_database_stops_the_start_naming_it(tmp_path, name):
    database = tmp_path / name
    database.write_bytes(b"this is not a database" * 100)
    finished = await run_to_exit(
        sys.executable,
        "-m",
        "requestor_svc",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    )
    assert finished.returncode == 1
    last_line = finished.stderr.decode().strip().splitlines()[-1]
    assert last_line.startswith("quoteflow requestor service cannot start: cannot open store")
    assert str(database) in last_line
    assert database.read_bytes().startswith(b"this is not a database")
