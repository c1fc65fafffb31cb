"""An earlier release's journal (processor.sqlite3) is imported into the core's
SQLite stores at the first start: its orders, events, proposals still being
priced, a completion still waiting, request ids, tombstones and the request
id key all carry on, and the journal is kept, renamed."""

from pathlib import Path

import grpc
import pytest
from support.processor_harness import processor_harness
from support.quote_harness import QuoteHarness, submission

from processor_svc.completion_records import completion_put
from processor_svc.proposal_records import Request, proposal_put, request_put
from processor_svc.quote_pricer import ProposalQuote
from processor_svc.request_id_key import KEYS, REQUEST_ID_KEY, stored_request_id_key
from queues.order_events import OrderEvent, OrderEventKind, event_put
from queues.order_tombstones import tombstone_put
from queues.records import RecordError
from queues.storage import Put
from queues.storage_sqlite import SqliteStore
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.codecs import ProtoCodec

KEY = bytes(range(32))
QUOTES = ProtoCodec(quote_pb.QueueMessage)


def event(order: str, seq: int, kind: OrderEventKind, proposal: str, at: float) -> OrderEvent:
    quote = quote_pb.QueueMessage(id=f"q-{proposal}") if proposal else None
    text = f"{proposal}/New" if proposal else f"{order}/Completed"
    return OrderEvent(order, seq, kind, proposal, text, at, quote)


async def write_journal(path: Path, pending_handle: str) -> None:
    """A journal as the earlier release wrote it: DONE completed with two
    proposals; OPEN with one priced, one still being priced, a completion
    asked for and a request id; GONE removed."""
    journal = SqliteStore(path)
    await journal.open()
    new, completed = OrderEventKind.PROPOSAL_NEW, OrderEventKind.ORDER_COMPLETED
    await journal.commit(
        [
            Put(KEYS, REQUEST_ID_KEY, {"version": 1, "secret": KEY.hex()}),
            event_put(event("DONE", 1, new, "P1", 100.0), QUOTES),
            event_put(event("DONE", 2, new, "P2", 101.0), QUOTES),
            event_put(event("DONE", 3, completed, "", 102.0), QUOTES),
            proposal_put("DONE", "P1", "q-P1"),
            proposal_put("DONE", "P2", "q-P2"),
            event_put(event("OPEN", 1, new, "P1", 200.0), QUOTES),
            proposal_put("OPEN", "P1", "q-P1"),
            proposal_put("OPEN", "P2", pending_handle),
            request_put("r-1", Request("OPEN", "P1", ProposalQuote(submission("r")).fingerprint())),
            completion_put("OPEN", 1e12),
            tombstone_put("GONE", 150.0),
        ]
    )
    await journal.close()


async def events(stub, order: str) -> list[pb.OrderEvent]:
    call = stub.WatchOrder(pb.WatchOrderRequest(order_req_id=order), timeout=30)
    return [answer.event async for answer in call]


async def test_a_journal_is_imported_at_the_first_start_and_kept_renamed(
    tmp_path: Path, quote: QuoteHarness
) -> None:
    pending = await quote.stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=submission()))
    journal = tmp_path / "processor.sqlite3"
    await write_journal(journal, pending.message.id)
    settings = {"store": "sqlite", "data_dir": str(tmp_path), "completion_wait": 30.0}

    async with processor_harness(quote.server.address, **settings) as processor:
        done = await events(processor.stub, "DONE")
        opened = await events(processor.stub, "OPEN")
        again = await processor.stub.SubmitProposal(
            pb.SubmitProposalRequest(
                order_req_id="OPEN",
                proposal_id="P1",
                submission=submission("r"),
                request_id="r-1",
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await events(processor.stub, "GONE")
        key = await stored_request_id_key(processor.processor.orders.logs, now=0.0)

    assert [(e.sequence, e.text, e.created_at.ToSeconds()) for e in done] == [
        (1, "P1/New", 100),
        (2, "P2/New", 101),
        (3, "DONE/Completed", 102),
    ]
    assert done[0].quote.id == "q-P1"
    # The proposal still being priced was priced from its handle, then the
    # completion asked for before the upgrade went on.
    assert [(e.sequence, e.proposal_id, e.kind) for e in opened] == [
        (1, "P1", pb.ORDER_EVENT_KIND_PROPOSAL_NEW),
        (2, "P2", pb.ORDER_EVENT_KIND_PROPOSAL_NEW),
        (3, "", pb.ORDER_EVENT_KIND_ORDER_COMPLETED),
    ]
    assert opened[1].quote.id == pending.message.id
    assert again.duplicate
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert key == KEY
    assert not journal.exists()
    assert (tmp_path / "processor.sqlite3.imported").exists()

    # The next start reads the core's stores alone.
    async with processor_harness(quote.server.address, **settings) as processor:
        assert await events(processor.stub, "DONE") == done
        stats = await processor.stub.GetStats(pb.GetStatsRequest())
    assert (stats.order_queues_count, stats.events_count) == (2, 6)


async def test_a_journal_that_cannot_be_read_refuses_the_start_and_stays(
    tmp_path: Path, quote: QuoteHarness
) -> None:
    journal = SqliteStore(tmp_path / "processor.sqlite3")
    await journal.open()
    await journal.commit([Put("proposals", '["o1", "p1"]', {"version": 99})])
    await journal.close()
    with pytest.raises(RecordError, match=r"proposals.*has version 99"):
        async with processor_harness(quote.server.address, store="sqlite", data_dir=str(tmp_path)):
            pass
    assert (tmp_path / "processor.sqlite3").exists()
