"""Submissions made while a call is in flight go to the quote service together,
as one BatchSubmitQuotes; a refused batch is sent again item by item, so each
caller gets its own answer (QuoteBatches, with a scripted quote service)."""

import asyncio
from typing import Any

import grpc
import pytest

from processor_svc.quote_batches import QuoteBatches
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.errors import DownstreamError, ForwardedError, rich_status


class ScriptedQuote:
    """Answers SubmitQuote and BatchSubmitQuotes with message ids made of the
    request ids, once the gate is open; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.gate = asyncio.Event()
        self.refuse_batches = False
        self.refuse: set[str] = set()
        self.unreachable = False
        self.SubmitQuote = self._submit
        self.BatchSubmitQuotes = self._batch
        self._called = asyncio.Condition()

    async def calls_reach(self, count: int) -> None:
        async with self._called:
            await self._called.wait_for(lambda: len(self.calls) >= count)

    async def _record(self, name: str, ids: list[str]) -> None:
        async with self._called:
            self.calls.append((name, ids))
            self._called.notify_all()

    async def call(self, method: Any, request: Any) -> Any:
        return await method(request)

    async def _submit(self, request: pb.SubmitQuoteRequest) -> pb.SubmitQuoteResponse:
        await self._record("SubmitQuote", [request.request_id])
        await self.gate.wait()
        if self.unreachable:
            raise DownstreamError("quote service", grpc.StatusCode.UNAVAILABLE, "down")
        if request.request_id in self.refuse:
            raise refused()
        return pb.SubmitQuoteResponse(message=pb.QueueMessage(id=f"m-{request.request_id}"))

    async def _batch(self, request: pb.BatchSubmitQuotesRequest) -> pb.BatchSubmitQuotesResponse:
        ids = [item.request_id for item in request.requests]
        await self._record("BatchSubmitQuotes", ids)
        await self.gate.wait()
        if self.unreachable:
            raise DownstreamError("quote service", grpc.StatusCode.UNAVAILABLE, "down")
        if self.refuse_batches or self.refuse & set(ids):
            raise refused()
        return pb.BatchSubmitQuotesResponse(
            responses=[pb.SubmitQuoteResponse(message=pb.QueueMessage(id=f"m-{i}")) for i in ids]
        )


def refused() -> ForwardedError:
    status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, "refused", reason="SCRIPTED")
    return ForwardedError("quote service", status)


def request(request_id: str) -> pb.SubmitQuoteRequest:
    return pb.SubmitQuoteRequest(request_id=request_id)


async def submitted(quote: ScriptedQuote, first: str, then: list[str]) -> list[Any]:
    """Submit first, then, while its call is in flight, the others; the answers."""
    batches = QuoteBatches(quote, quote)  # type: ignore[arg-type]
    calls = [asyncio.create_task(batches.submit(request(first)))]
    await quote.calls_reach(1)
    calls += [asyncio.create_task(batches.submit(request(i))) for i in then]
    quote.gate.set()
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_submissions_made_during_a_call_go_together_in_the_next() -> None:
    quote = ScriptedQuote()
    answers = await submitted(quote, "a", ["b", "c", "d"])
    assert [answer.message.id for answer in answers] == ["m-a", "m-b", "m-c", "m-d"]
    assert quote.calls == [("SubmitQuote", ["a"]), ("BatchSubmitQuotes", ["b", "c", "d"])]


async def test_a_request_id_twice_waits_for_the_next_batch() -> None:
    quote = ScriptedQuote()
    answers = await submitted(quote, "a", ["b", "c", "b", "d"])
    assert [answer.message.id for answer in answers] == ["m-a", "m-b", "m-c", "m-b", "m-d"]
    assert quote.calls[1:] == [("BatchSubmitQuotes", ["b", "c"]), ("BatchSubmitQuotes", ["b", "d"])]


async def test_a_refused_batch_is_sent_again_item_by_item() -> None:
    quote = ScriptedQuote()
    quote.refuse = {"c"}
    answers = await submitted(quote, "a", ["b", "c", "d"])
    assert [getattr(a, "message", None) and a.message.id for a in answers[:2]] == ["m-a", "m-b"]
    assert isinstance(answers[2], ForwardedError)
    assert answers[3].message.id == "m-d"
    assert ("BatchSubmitQuotes", ["b", "c", "d"]) in quote.calls
    assert {ids[0] for name, ids in quote.calls[2:] if name == "SubmitQuote"} == {"b", "c", "d"}


async def test_an_unreachable_quote_service_fails_every_caller() -> None:
    quote = ScriptedQuote()
    quote.unreachable = True
    answers = await submitted(quote, "a", ["b", "c"])
    assert all(isinstance(answer, DownstreamError) for answer in answers)
    assert len(quote.calls) == 2


async def test_a_caller_that_goes_away_leaves_its_submission_to_the_batch() -> None:
    quote = ScriptedQuote()
    batches = QuoteBatches(quote, quote)  # type: ignore[arg-type]
    first = asyncio.create_task(batches.submit(request("a")))
    await quote.calls_reach(1)
    second = asyncio.create_task(batches.submit(request("b")))
    await asyncio.sleep(0)  # lets it join the batch waiting
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    quote.gate.set()
    assert (await first).message.id == "m-a"
    await quote.calls_reach(2)
    assert quote.calls[1] == ("SubmitQuote", ["b"])
