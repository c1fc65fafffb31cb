"""The first start over an earlier release's journal (quote.sqlite3, its
records as the journaled queue wrote them): every message is imported into
quote-jobs.sqlite3 once, as the core's jobs, and the journal is kept renamed
quote.sqlite3.imported. An import a crash cut short is finished, or done again,
at the next start."""

import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from support.polling import poll
from support.quote_harness import submission

from queues.core.jobs import NewJob
from queues.core.sqlite_store import SqliteJobStore
from queues.message import (
    Message,
    MessageStatus,
    NewMessage,
    Priority,
    Review,
    ReviewDecision,
    submission_fingerprint,
)
from queues.message_records import MessageCodec, RequestFacts
from queues.message_stats import PriorityCounts, QueueStats
from queues.records import RecordError
from queues.storage_sqlite import SqliteStore
from quote_svc import convert
from quote_svc.codecs import QuoteJobCodec, QuoteResultCodec
from quote_svc.config import QuoteConfig
from quote_svc.domain import QuoteResult
from quote_svc.pricing import QuoteJob
from quote_svc.quote_queue import QuoteQueue
from quote_svc.rating import rate
from quote_svc.service import QUEUE_NAME, binding, opened_queue
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.server import start_server

OldMessage = Message[QuoteJob, QuoteResult]
WORKERS = 2
PENDING_REQUEST = pb.SubmitQuoteRequest(submission=submission("slow-pending"), request_id="req-p")
DONE_REQUEST = pb.SubmitQuoteRequest(submission=submission("Grace"), request_id="req-done")


@dataclasses.dataclass
class Journal:
    """What the old queue held when it stopped, by applicant name."""

    messages: dict[str, OldMessage]
    stats: QueueStats

    def id_of(self, name: str) -> str:
        return self.messages[name].id


#: The journaled queue's defaults for a submission that names none.
OLD_MAX_RETRIES, OLD_ATTEMPT_TIMEOUT = 3, 300.0
CODEC = MessageCodec(QuoteJobCodec(), QuoteResultCodec())


def old_message(
    seq: int,
    request: pb.SubmitQuoteRequest | pb.RunQuoteRequest,
    status: MessageStatus,
    **done: Any,
) -> tuple[OldMessage, RequestFacts | None]:
    """Message seq as the journaled queue recorded request's submission, and
    the facts it kept of a request id; done: what happened to it since."""
    args = convert.submit_args(request)
    max_retries = OLD_MAX_RETRIES if args.max_retries is None else args.max_retries
    if isinstance(request, pb.RunQuoteRequest):
        max_retries = 0  # RunQuote made one attempt, inline
    created_at = time.time() - 100 + seq
    message: OldMessage = Message(
        f"{seq:032x}",  # as random_id() made them
        seq,
        args.job,
        args.priority,
        status,
        created_at,
        max_retries,
        args.attempt_timeout or OLD_ATTEMPT_TIMEOUT,
        request_id=args.request_id,
        **done,
    )
    facts = None
    if args.request_id:
        item = NewMessage(
            args.job,
            args.priority,
            max_retries=args.max_retries,
            attempt_timeout=args.attempt_timeout,
        )
        fingerprint = submission_fingerprint(CODEC.payload.encode(args.job), item)
        facts = RequestFacts(fingerprint, 0, 0.5)
    return message, facts


def succeeded(request: pb.SubmitQuoteRequest) -> dict[str, Any]:
    """What a successful attempt at request left on its message."""
    result = rate(convert.submit_args(request).job.submission)
    now = time.time()
    return {
        "started_at": now - 2,
        "completed_at": now - 1,
        "result": result,
        "review_reason": result.review_reason,
    }


def failed(name: str, attempts: int, *, dead_lettered: bool) -> dict[str, Any]:
    now = time.time()
    return {
        "started_at": now - 2,
        "completed_at": now - 1,
        "error_message": f"RuntimeError: scripted failure of {name}",
        "retry_count": attempts,
        "dead_lettered": dead_lettered,
    }


def reviewed(decision: ReviewDecision, reviewer: str, note: str = "") -> Review:
    return Review(decision, reviewer, note, time.time())


async def write_journal(data_dir: Path) -> Journal:
    """A journal as an earlier release left it, its records as its queue wrote
    them: completed (one with a request id), dead-lettered, awaiting review,
    rejected, approved, failed inline, cancelled while running, and one
    pending with a request id (its attempt cut by the stop)."""
    big = 3_000_000  # reviewed
    ada = pb.SubmitQuoteRequest(submission=submission("Ada"))
    held = pb.SubmitQuoteRequest(submission=submission("rh", big))
    rejected = pb.SubmitQuoteRequest(submission=submission("rr", big))
    approved = pb.SubmitQuoteRequest(submission=submission("ra", big))
    dead = pb.SubmitQuoteRequest(submission=submission("fail-dead"), max_retries=1)
    cancelled = pb.SubmitQuoteRequest(submission=submission("slow-cancelled"))
    inline = pb.RunQuoteRequest(submission=submission("fail-inline"))
    now = time.time()
    written = {
        "Ada": old_message(1, ada, MessageStatus.COMPLETED, **succeeded(ada)),
        "Grace": old_message(2, DONE_REQUEST, MessageStatus.COMPLETED, **succeeded(DONE_REQUEST)),
        "fail-dead": old_message(
            3, dead, MessageStatus.FAILED, **failed("fail-dead", 2, dead_lettered=True)
        ),
        "review-held": old_message(4, held, MessageStatus.AWAITING_REVIEW, **succeeded(held)),
        "review-rejected": old_message(
            5,
            rejected,
            MessageStatus.REJECTED,
            **succeeded(rejected),
            review=reviewed(ReviewDecision.REJECT, "alice", "too risky"),
        ),
        "review-approved": old_message(
            6,
            approved,
            MessageStatus.COMPLETED,
            **succeeded(approved),
            review=reviewed(ReviewDecision.APPROVE, "bob"),
        ),
        "fail-inline": old_message(
            7, inline, MessageStatus.FAILED, **failed("fail-inline", 1, dead_lettered=False)
        ),
        "slow-cancelled": old_message(
            8, cancelled, MessageStatus.CANCELLED, started_at=now - 2, completed_at=now - 1
        ),
        "slow-pending": old_message(9, PENDING_REQUEST, MessageStatus.PENDING),
    }
    store = SqliteStore(data_dir / "quote.sqlite3")
    await store.open()
    await store.commit([CODEC.put(message, facts) for message, facts in written.values()])
    await store.close()
    messages = {name: message for name, (message, _) in written.items()}
    config = quote_config(data_dir)
    # What the earlier release's GetStats answered of these messages.
    stats = QueueStats(
        pending=1,
        processing=0,
        awaiting_review=1,
        completed=3,
        failed=2,
        cancelled=1,
        rejected=1,
        dead_letters=1,
        max_size=config.max_size,
        workers=config.workers,
        oldest_pending=messages["slow-pending"].created_at,
        longest_processing_seconds=0.0,
        by_priority=tuple(
            PriorityCounts(priority, int(priority is Priority.NORMAL), 0) for priority in Priority
        ),
    )
    return Journal(messages, stats)


def quote_config(data_dir: Path) -> QuoteConfig:
    return QuoteConfig(port=0, data_dir=str(data_dir), workers=WORKERS)


@contextlib.asynccontextmanager
async def served(data_dir: Path) -> AsyncIterator[tuple[QuoteQueue, pb_grpc.QuoteServiceStub]]:
    """The service's queue over data_dir as serve() opens it, served in this
    process; the caller starts the queue (reads answer before it does)."""
    async with opened_queue(quote_config(data_dir)) as (queue, _):
        server = await start_server([binding(queue)], host="127.0.0.1", port=0)
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                yield queue, pb_grpc.QuoteServiceStub(channel)
        finally:
            await server.stop(None)
            await queue.stop(grace=0)


def as_served(message: OldMessage) -> pb.QueueMessage:
    """What GetMessage answered for message in the earlier release."""
    return convert.with_message(pb.GetMessageResponse(), message).message


async def message(stub: pb_grpc.QuoteServiceStub, message_id: str) -> pb.QueueMessage:
    return (await stub.GetMessage(pb.GetMessageRequest(id=message_id))).message


async def assert_served_as_before(stub: pb_grpc.QuoteServiceStub, journal: Journal) -> None:
    """Every message and the stats as the earlier release served them, beside
    what this release adds: a pending message's aged priority, and the
    busiest fairness keys (all of the journal's are the key "")."""
    for name, old in journal.messages.items():
        served = await message(stub, old.id)
        if old.status is MessageStatus.PENDING:
            assert served.effective_priority != pb.PRIORITY_UNSPECIFIED, name
        served.ClearField("effective_priority")
        assert served == as_served(old), name
    stats = await stub.GetStats(pb.GetStatsRequest())
    pending = [(k.fairness_key, k.pending_count) for k in stats.busiest_keys]
    assert pending == ([("", journal.stats.pending)] if journal.stats.pending else [])
    stats.ClearField("busiest_keys")
    assert stats == convert.stats_to_pb(journal.stats)


def files(data_dir: Path) -> set[str]:
    return {path.name for path in data_dir.iterdir() if not path.name.endswith(".lock")}


async def test_a_journal_is_imported_whole_at_the_first_start(tmp_path, caplog):
    journal = await write_journal(tmp_path)
    with caplog.at_level(logging.INFO, logger="quote_svc.journal_import"):
        async with served(tmp_path) as (queue, stub):
            [line] = [r.getMessage() for r in caplog.records if "imported" in r.getMessage()]
            assert line.startswith("imported 9 messages from the journal")
            # Every message as the earlier release answered it, and the same stats.
            await assert_served_as_before(stub, journal)
            listed = await stub.ListMessages(pb.ListMessagesRequest(page_size=100))
            assert [m.id for m in listed.messages] == [m.id for m in journal.messages.values()]
            await queue.start()
            # Request ids still answer their messages, and still tell a reuse apart.
            again = await stub.SubmitQuote(PENDING_REQUEST)
            assert again.message.id == journal.id_of("slow-pending")
            done = await stub.SubmitQuote(DONE_REQUEST)
            assert done.message == as_served(journal.messages["Grace"])
            reused = pb.SubmitQuoteRequest(submission=submission("Other"), request_id="req-p")
            with pytest.raises(grpc.aio.AioRpcError) as conflict:
                await stub.SubmitQuote(reused)
            assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
            # The pending one, its attempt cut by the old process, is priced now.
            priced = await poll(
                lambda: message(stub, journal.id_of("slow-pending")),
                lambda m: m.status == pb.MESSAGE_STATUS_COMPLETED,
                "the pending message priced",
            )
            assert priced.result.annual_premium_cents > 0
            # What a client decides on an imported message is decided.
            held = journal.id_of("review-held")
            await stub.ReviewQuote(
                pb.ReviewQuoteRequest(
                    id=held, decision=pb.REVIEW_DECISION_APPROVE, reviewer="carol"
                )
            )
            assert (await message(stub, held)).status == pb.MESSAGE_STATUS_COMPLETED
            redriven = await stub.RedriveMessage(
                pb.RedriveMessageRequest(id=journal.id_of("fail-dead"))
            )
            assert redriven.message.retry_count == 0
    assert files(tmp_path) == {"quote-jobs.sqlite3", "quote.sqlite3.imported"}


async def test_a_second_start_imports_nothing(tmp_path):
    journal = await write_journal(tmp_path)
    async with served(tmp_path):
        pass
    async with served(tmp_path) as (_, stub):
        await assert_served_as_before(stub, journal)
    assert files(tmp_path) == {"quote-jobs.sqlite3", "quote.sqlite3.imported"}


async def test_a_crash_between_the_renames_is_finished_at_the_next_start(tmp_path):
    journal = await write_journal(tmp_path)
    pending = journal.id_of("slow-pending")
    async with served(tmp_path) as (queue, stub):
        await queue.start()
        await poll(
            lambda: message(stub, pending),
            lambda m: m.status == pb.MESSAGE_STATUS_COMPLETED,
            "the pending message priced",
        )
        stats = await stub.GetStats(pb.GetStatsRequest())
    # As a crash after the jobs file took its name leaves it: the journal beside it.
    os.replace(tmp_path / "quote.sqlite3.imported", tmp_path / "quote.sqlite3")
    async with served(tmp_path) as (queue, stub):
        # The jobs file stands: nothing is imported again over what happened since.
        assert (await message(stub, pending)).status == pb.MESSAGE_STATUS_COMPLETED
        assert await stub.GetStats(pb.GetStatsRequest()) == stats
    assert files(tmp_path) == {"quote-jobs.sqlite3", "quote.sqlite3.imported"}


async def test_a_stale_importing_file_is_removed_and_the_import_done_again(tmp_path):
    journal = await write_journal(tmp_path)
    # As a crash during an import leaves it: a file (and its WAL) half-written.
    stale = SqliteJobStore(tmp_path / "quote-jobs.sqlite3.importing")
    await stale.open()
    [left] = await stale.submit([NewJob(QUEUE_NAME, {"p": {}}, 2, 1)], now=1.0)
    await stale.close()
    (tmp_path / "quote-jobs.sqlite3.importing-wal").write_bytes(b"half a commit")
    async with served(tmp_path) as (_, stub):
        await assert_served_as_before(stub, journal)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await message(stub, left.job.id)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert files(tmp_path) == {"quote-jobs.sqlite3", "quote.sqlite3.imported"}


async def test_an_earlier_import_kept_beside_is_never_overwritten(tmp_path):
    (tmp_path / "quote.sqlite3.imported").write_bytes(b"an earlier journal")
    journal = await write_journal(tmp_path)
    async with served(tmp_path) as (_, stub):
        await assert_served_as_before(stub, journal)
    assert (tmp_path / "quote.sqlite3.imported").read_bytes() == b"an earlier journal"
    assert files(tmp_path) == {
        "quote-jobs.sqlite3",
        "quote.sqlite3.imported",
        "quote.sqlite3.imported.2",
    }


async def test_a_journal_that_cannot_be_read_is_refused_and_left_as_it_was(tmp_path):
    journal = tmp_path / "quote.sqlite3"
    store = SqliteStore(journal)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(journal)) as side, side:
        side.execute("INSERT INTO records VALUES ('messages', '0000000000000007', '{\"cut')")
    before = journal.read_bytes()
    with pytest.raises(RecordError, match="record '0000000000000007' of collection 'messages'"):
        async with served(tmp_path):
            pass
    assert journal.read_bytes() == before
    assert files(tmp_path) == {"quote.sqlite3"}


async def test_a_journal_left_by_a_killed_process_is_imported_with_its_wal(tmp_path):
    """A kill leaves the journal's last commits in its -wal: they are imported too."""
    killed = tmp_path / "killed"
    killed.mkdir()
    store = SqliteStore(tmp_path / "quote.sqlite3")
    await store.open()
    # Left open: what it commits stays in the WAL, as a kill leaves it.
    ids = []
    for seq, name in enumerate(("slow-1", "slow-2", "slow-3"), start=1):
        pending, facts = old_message(
            seq, pb.SubmitQuoteRequest(submission=submission(name)), MessageStatus.PENDING
        )
        await store.commit([CODEC.put(pending, facts)])
        ids.append(pending.id)
    for name in ("quote.sqlite3", "quote.sqlite3-wal", "quote.sqlite3-shm"):
        (killed / name).write_bytes((tmp_path / name).read_bytes())
    await store.close()
    assert (killed / "quote.sqlite3-wal").stat().st_size > 0
    async with served(killed) as (_, stub):
        for message_id in ids:
            assert (await message(stub, message_id)).status == pb.MESSAGE_STATUS_PENDING
    assert "quote.sqlite3.imported" in files(killed)
    assert not {"quote.sqlite3", "quote.sqlite3-wal"} & files(killed)
