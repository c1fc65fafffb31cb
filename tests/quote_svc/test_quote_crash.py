"""The quote service killed with SIGKILL at different points, then restarted on
the same database: nothing it acknowledged is lost, and each result is
recorded once."""

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from support.polling import poll
from support.quote_harness import submission
from support.service_process import Launched, run_to_exit, running_service

from queues.core.jobs import NewJob
from queues.core.sqlite_store import SqliteJobStore
from queues.storage_sqlite import SqliteStore
from quote_svc.service import QUEUE_NAME
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

TESTS = str(Path(__file__).resolve().parents[1])
SCRIPTED = ("--processor", "support.quote_plugins:scripted", "--workers", "1")


@contextlib.asynccontextmanager
async def quote_service(
    data_dir: Path, *args: str
) -> AsyncIterator[tuple[Launched, grpc.aio.Channel, pb_grpc.QuoteServiceStub]]:
    """The quote service as a process on data_dir, a channel to it, and its stub."""
    async with (
        running_service("quote_svc", *args, data_dir=data_dir, PYTHONPATH=TESTS) as service,
        grpc.aio.insecure_channel(service.address) as channel,
    ):
        yield service, channel, pb_grpc.QuoteServiceStub(channel)


async def stats(channel: grpc.aio.Channel) -> pb.GetStatsResponse:
    return await pb_grpc.QuoteServiceStub(channel).GetStats(pb.GetStatsRequest())


async def submit_all(stub: pb_grpc.QuoteServiceStub, names: list[str]) -> list[str]:
    requests = [pb.SubmitQuoteRequest(submission=submission(n)) for n in names]
    answers = await asyncio.gather(*(stub.SubmitQuote(r) for r in requests))
    return [a.message.id for a in answers]


async def test_a_kill_with_messages_pending_and_processing_loses_none(tmp_path):
    async with quote_service(tmp_path, *SCRIPTED) as (service, channel, stub):
        ids = await submit_all(stub, [f"paced-{n}" for n in range(300)])
        await poll(lambda: stats(channel), lambda s: s.completed_count >= 20, "20 completed")
        service.process.kill()
        await service.process.wait()

    async with quote_service(tmp_path, "--workers", "2") as (service, channel, stub):
        done = await poll(
            lambda: stats(channel), lambda s: s.completed_count == 300, "all completed", within=60
        )
        assert (done.pending_count, done.processing_count, done.failed_count) == (0, 0, 0)
        for message_id in ids:
            got = (await stub.GetMessage(pb.GetMessageRequest(id=message_id))).message
            assert got.status == pb.MESSAGE_STATUS_COMPLETED
            assert got.result.annual_premium_cents > 0


async def test_an_interrupted_attempt_runs_again_after_the_restart(tmp_path):
    async with quote_service(tmp_path, *SCRIPTED) as (service, channel, stub):
        (slow,) = await submit_all(stub, ["slow-1"])
        await poll(lambda: stats(channel), lambda s: s.processing_count == 1, "processing")
        service.process.kill()
        await service.process.wait()

    async with quote_service(tmp_path) as (service, channel, stub):
        states = [r.message async for r in stub.WatchMessage(pb.WatchMessageRequest(id=slow))]
        assert states[-1].status == pb.MESSAGE_STATUS_COMPLETED
        assert states[-1].retry_count == 0


async def test_a_retry_waiting_out_its_backoff_keeps_its_schedule(tmp_path):
    backoff = ("--backoff-base", "3600", "--backoff-cap", "3600")
    async with quote_service(tmp_path, *SCRIPTED, *backoff) as (service, channel, stub):
        (flaky,) = await submit_all(stub, ["fail-1"])
        await poll(
            lambda: stats(channel),
            lambda s: s.pending_count == 1 and s.processing_count == 0,
            "one pending, none processing",
        )
        before = (await stub.GetMessage(pb.GetMessageRequest(id=flaky))).message
        assert (before.retry_count, before.HasField("next_attempt_at")) == (1, True)
        service.process.kill()
        await service.process.wait()

    async with quote_service(tmp_path, *SCRIPTED, *backoff) as (service, channel, stub):
        after = (await stub.GetMessage(pb.GetMessageRequest(id=flaky))).message
        assert after.status == pb.MESSAGE_STATUS_PENDING
        assert after.retry_count == 1
        assert after.next_attempt_at == before.next_attempt_at
        assert after.error_message == "RuntimeError: scripted failure of fail-1"
        assert (await stats(channel)).processing_count == 0


async def test_sigterm_under_load_loses_nothing_acknowledged(tmp_path):
    acknowledged: list[str] = []
    hundred_acknowledged = asyncio.Event()
    async with quote_service(tmp_path, *SCRIPTED) as (service, channel, stub):

        async def keep_submitting(n: int) -> None:
            for k in range(1000):
                request = pb.SubmitQuoteRequest(submission=submission(f"paced-{n}-{k}"))
                try:
                    acknowledged.append((await stub.SubmitQuote(request)).message.id)
                    if len(acknowledged) >= 100:
                        hundred_acknowledged.set()
                except grpc.aio.AioRpcError as refused:
                    assert refused.code() == grpc.StatusCode.UNAVAILABLE
                    return

        senders = [asyncio.create_task(keep_submitting(n)) for n in range(8)]
        await hundred_acknowledged.wait()
        service.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*senders)
        assert await service.process.wait() == 0

    async with quote_service(tmp_path, "--workers", "4") as (service, channel, stub):
        total = len(acknowledged)
        await poll(
            lambda: stats(channel),
            lambda s: s.completed_count == total,
            f"{total} completed",
            within=60,
        )
        for message_id in acknowledged:
            got = (await stub.GetMessage(pb.GetMessageRequest(id=message_id))).message
            assert got.status == pb.MESSAGE_STATUS_COMPLETED


async def test_a_repeated_request_id_answers_the_same_message_after_a_restart(tmp_path):
    request = pb.SubmitQuoteRequest(submission=submission("Once"), request_id="req-1")
    async with quote_service(tmp_path) as (service, channel, stub):
        answers = await asyncio.gather(*(stub.SubmitQuote(request) for _ in range(100)))
        (first,) = {a.message.id for a in answers}
        service.process.kill()
        await service.process.wait()
    async with quote_service(tmp_path) as (service, channel, stub):
        again = await stub.SubmitQuote(request)
        assert again.message.id == first
        assert (await stats(channel)).completed_count + again.message.status >= 1
        other = pb.SubmitQuoteRequest(submission=submission("Other"), request_id="req-1")
        with pytest.raises(grpc.aio.AioRpcError) as conflict:
            await stub.SubmitQuote(other)
        assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("quote-jobs.sqlite3", id="the-store"),
        # An earlier release's journal, refused by its import.
        pytest.param("quote.sqlite3", id="the-journal"),
    ],
)
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(b"not a database" * 200), id="corrupt"),
        pytest.param(lambda path: path.mkdir(), id="not-a-file"),
    ],
)
async def test_an_unusable_database_is_refused_at_start(tmp_path, damage, name):
    database = tmp_path / name
    damage(database)
    finished = await run_to_exit(
        sys.executable,
        "-m",
        "quote_svc",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    )
    assert finished.returncode == 1
    assert f"cannot open store {database}".encode() in finished.stderr
    assert b'"serving"' not in finished.stderr
    assert b"Traceback" not in finished.stderr
    assert {p.name for p in tmp_path.glob("quote*.sqlite3*")} == {name}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param('{"cut', "is not JSON", id="not-json"),
        pytest.param(
            '{"id": "m7", "seq": 7}', "is broken: field 'status' is missing", id="a-field-missing"
        ),
        pytest.param(
            '{"status": "pending", "result": null, "review": null, "id": "m7", "seq": "7"}',
            "is broken: field 'seq' must be an integer of at least 1, not a string '7'",
            id="a-field-of-the-wrong-type",
        ),
    ],
)
async def test_a_broken_journal_record_is_refused_at_start_in_one_line(tmp_path, value, reason):
    """An earlier release's journal with a record it could not read is refused
    by its import as that release refused it, and left as it was."""
    database = tmp_path / "quote.sqlite3"
    store = SqliteStore(database)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(database)) as side, side:
        side.execute("INSERT INTO records VALUES ('messages', '0000000000000007', ?)", (value,))
    finished = await run_to_exit(
        sys.executable, "-m", "quote_svc", "--port", "0", "--data-dir", str(tmp_path)
    )
    assert finished.returncode == 1
    refusal = (
        f"quote service cannot start: cannot read store {database}: "
        f"record '0000000000000007' of collection 'messages' {reason}"
    )
    [last] = finished.stderr.decode().splitlines()[-1:]
    assert last.startswith(f"quoteflow {refusal}")
    assert b"Traceback" not in finished.stderr
    assert {p.name for p in tmp_path.glob("quote*.sqlite3*")} == {"quote.sqlite3"}


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        pytest.param("payload", '{"cut', "field 'payload' is not JSON", id="a-payload"),
        pytest.param("result", "[1,", "field 'result' is not JSON", id="a-result"),
    ],
)
async def test_a_broken_job_row_is_refused_at_start_in_one_line(tmp_path, column, value, reason):
    database = tmp_path / "quote-jobs.sqlite3"
    store = SqliteJobStore(database)
    await store.open()
    # The check at start reads past the fine one to the broken one.
    [_, broken] = await store.submit(
        [NewJob(QUEUE_NAME, {"p": {}}, 2, 4), NewJob(QUEUE_NAME, {"p": {}}, 2, 4)], now=1.0
    )
    await store.close()
    with contextlib.closing(sqlite3.connect(database)) as side, side:
        side.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, broken.job.id))
    finished = await run_to_exit(
        sys.executable, "-m", "quote_svc", "--port", "0", "--data-dir", str(tmp_path)
    )
    assert finished.returncode == 1
    refusal = (
        f"quote service cannot start: cannot read store {database}: "
        f"record '{broken.job.id}' of collection 'jobs' is broken: {reason}"
    )
    [last] = finished.stderr.decode().splitlines()[-1:]
    assert last.startswith(f"quoteflow {refusal}")
    assert b'"serving"' not in finished.stderr
    assert b"Traceback" not in finished.stderr
