"""An earlier release's journal (requestor.sqlite3) is imported into the core's
SQLite JobStore at the first start: every task keeps its id, its request id
and what it had; a queued one runs. The import is crash-safe."""

from pathlib import Path
from typing import Any

from support.requestor_harness import FakeProcessor, RequestorHarness

from queues.storage import Put
from queues.storage_sqlite import SqliteStore
from queues.task import TaskPriority, TaskRecord, TaskStatus
from queues.task_records import TaskCodec
from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as pb
from requestor_svc.order_follower import OrderProgress
from requestor_svc.order_job import JobArgsCodec, OrderJob, Placement, ProgressCodec

CODEC: TaskCodec[OrderProgress] = TaskCodec(JobArgsCodec(), ProgressCodec())


def record(
    task_id: str,
    order: str,
    status: TaskStatus,
    seq: int,
    *,
    request_id: str = "",
    result: OrderProgress | None = None,
    error: str = "",
) -> Put:
    """The record the pool wrote of the task, seq its place in submission order."""
    placement = Placement(order, TaskPriority.HIGH, None, None)
    kwargs = {"job": OrderJob(placement, request_id, OrderProgress(order))}
    final = status is not TaskStatus.QUEUED
    task: TaskRecord[OrderProgress] = TaskRecord(
        task_id=task_id,
        order_req_id=order,
        priority=TaskPriority.HIGH,
        status=status,
        created_at=100.0 + seq,
        deadline=2e9,
        started_at=150.0 if final else None,
        completed_at=160.0 if final else None,
        result=result,
        error=error,
        kwargs=kwargs,
    )
    return CODEC.put(task, seq, "follow-order")


async def write_journal(path: Path) -> None:
    done = OrderProgress("DONE")
    for sequence, kind, proposal in [
        (1, processor_pb.ORDER_EVENT_KIND_PROPOSAL_NEW, "P1"),
        (2, processor_pb.ORDER_EVENT_KIND_ORDER_COMPLETED, ""),
    ]:
        event = processor_pb.OrderEvent(
            order_req_id="DONE", sequence=sequence, kind=kind, proposal_id=proposal
        )
        done.accept(event)
    journal = SqliteStore(path)
    await journal.open()
    await journal.commit(
        [
            record("t-queued", "NEXT", TaskStatus.QUEUED, 1, request_id="r-1"),
            record("t-done", "DONE", TaskStatus.SUCCEEDED, 2, result=done),
            record("t-off", "OFF", TaskStatus.CANCELLED, 3, error="cancelled"),
        ]
    )
    await journal.close()


async def test_a_journal_is_imported_with_every_task_under_its_id(
    tmp_path: Path, start_requestor: Any, fake: FakeProcessor
) -> None:
    await write_journal(tmp_path / "requestor.sqlite3")
    # A stale file of an import cut short is written over.
    (tmp_path / "requestor-jobs.sqlite3.importing").write_bytes(b"half an import")
    requestor: RequestorHarness = await start_requestor(store="sqlite", data_dir=str(tmp_path))

    done = await requestor.result("t-done")
    assert (done.status, done.last_sequence, done.completed_at.ToSeconds()) == (
        pb.TASK_STATUS_SUCCEEDED,
        2,
        160,
    )
    assert [e.proposal_id for e in done.proposals] == ["P1"]
    off = await requestor.result("t-off")
    assert (off.status, off.error_message) == (pb.TASK_STATUS_CANCELLED, "cancelled")
    again = await requestor.place("NEXT", request_id="r-1", priority=pb.TASK_PRIORITY_HIGH)
    assert again.task_id == "t-queued"
    fake.propose("NEXT", "N1")
    fake.complete("NEXT")
    queued = await requestor.wait_final("t-queued")
    assert (queued.status, [e.proposal_id for e in queued.proposals]) == (
        pb.TASK_STATUS_SUCCEEDED,
        ["N1"],
    )
    assert queued.created_at.ToSeconds() == 101
    assert not (tmp_path / "requestor.sqlite3").exists()
    assert (tmp_path / "requestor.sqlite3.imported").exists()
    assert not (tmp_path / "requestor-jobs.sqlite3.importing").exists()


async def test_an_import_done_before_a_crash_only_renames_the_journal(
    tmp_path: Path, start_requestor: Any
) -> None:
    await write_journal(tmp_path / "requestor.sqlite3")
    first = await start_requestor(store="sqlite", data_dir=str(tmp_path))
    await first.requestor.drain()
    # As if the process died between the import's two renames.
    (tmp_path / "requestor.sqlite3.imported").rename(tmp_path / "requestor.sqlite3")
    second = await start_requestor(store="sqlite", data_dir=str(tmp_path))
    assert (await second.result("t-done")).status == pb.TASK_STATUS_SUCCEEDED
    assert (await second.stats())[2] == 2
    assert (tmp_path / "requestor.sqlite3.imported").exists()
