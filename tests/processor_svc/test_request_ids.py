"""The quote request ids the processor derives: unambiguous, keyed by a secret
kept in its store, out of clients' reach, and never told in an error."""

import hashlib

import grpc
import pytest
from support.processor_harness import ProcessorHarness
from support.quote_harness import QuoteHarness, submission
from support.rpc_errors import reason

from processor_svc.journal_import import read_journal
from processor_svc.quote_pricer import proposal_request_id
from processor_svc.request_id_key import KEYS, REQUEST_ID_KEY, stored_request_id_key
from queues.core.memory_log_store import MemoryLogStore
from queues.records import RecordError
from queues.storage import MemoryStore, Put
from quoteflow.processor.v1 import processor_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb

KEY = b"k" * 32


def test_pairs_that_join_alike_get_different_ids():
    first = proposal_request_id(KEY, "A\0B", "C")
    second = proposal_request_id(KEY, "A", "B\0C")
    assert first != second
    assert first == proposal_request_id(KEY, "A\0B", "C")
    assert len(proposal_request_id(KEY, "O" * 128, "P" * 128)) <= 128


def test_the_id_depends_on_the_key():
    assert proposal_request_id(KEY, "O", "P") != proposal_request_id(b"x" * 32, "O", "P")


async def test_the_key_is_made_once_and_kept_in_the_store():
    logs = MemoryLogStore()
    first = await stored_request_id_key(logs, now=1.0)
    assert await stored_request_id_key(logs, now=2.0) == first
    assert len(first) == 32
    assert await stored_request_id_key(MemoryLogStore(), now=1.0) != first


async def test_a_journaled_key_that_is_not_one_is_refused_naming_its_record():
    journal = MemoryStore()
    await journal.commit([Put(KEYS, REQUEST_ID_KEY, {"version": 1, "secret": "zz"})])
    with pytest.raises(RecordError, match=f"{REQUEST_ID_KEY}.*{KEYS}"):
        await read_journal(journal)
    await journal.commit([Put(KEYS, REQUEST_ID_KEY, {"version": 1, "secret": "00" * 8})])
    with pytest.raises(RecordError, match="holds a key of 8 bytes, not 32"):
        await read_journal(journal)


async def _priced(processor: ProcessorHarness, order: str) -> list[pb.OrderEvent]:
    await processor.stub.CompleteOrder(pb.CompleteOrderRequest(order_req_id=order))
    call = processor.stub.WatchOrder(pb.WatchOrderRequest(order_req_id=order))
    return [response.event async for response in call]


async def test_a_client_cannot_take_a_proposals_id_in_advance(
    quote: QuoteHarness, processor: ProcessorHarness
):
    # The id the processor used to derive, taken by a client first.
    taken = "proposal-" + hashlib.sha256(b"VICTIM\0P1").hexdigest()
    await quote.stub.SubmitQuote(
        quote_pb.SubmitQuoteRequest(submission=submission("Mallory"), request_id=taken)
    )
    await processor.stub.SubmitProposal(
        pb.SubmitProposalRequest(
            order_req_id="VICTIM", proposal_id="P1", submission=submission("Victim")
        )
    )
    new, _ = await _priced(processor, "VICTIM")
    assert new.kind == pb.ORDER_EVENT_KIND_PROPOSAL_NEW
    assert new.quote.payload.applicant_name == "Victim"
    assert new.quote.request_id != taken


async def test_a_refused_derived_id_is_not_told_to_the_caller(quote, start_processor):
    processor = await start_processor(quote.server.address, tombstone_retention=0.0)
    request = pb.SubmitProposalRequest(
        order_req_id="AGAIN", proposal_id="P1", submission=submission("First")
    )
    await processor.stub.SubmitProposal(request)
    await _priced(processor, "AGAIN")
    assert await processor.processor.orders.remove("AGAIN")
    request.submission.applicant_name = "Second"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await processor.stub.SubmitProposal(request)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(refused.value) == "PROPOSAL_PRICED_BEFORE"
    key = await stored_request_id_key(processor.processor.orders.logs, now=0.0)
    derived = proposal_request_id(key, "AGAIN", "P1")
    assert derived not in refused.value.details()
    trailing = dict(refused.value.trailing_metadata() or ())
    assert derived.encode() not in trailing["grpc-status-details-bin"]
