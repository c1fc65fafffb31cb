"""SubmitQuote calls made at once, sent as BatchSubmitQuotes.

One batch is in flight at a time (queues/core/coalescing.py): the first
submission goes out alone, at once, and those that arrive while a call is in
flight go together in the next, up to the batch limit. So a lone proposal
waits for nothing, and a burst of proposals costs the quote service one call
per round trip rather than one per proposal.

A batch is all or nothing. When the quote service refuses one (a bad item, a
request id reused, a queue with no room for all of it), each of its
submissions is sent again alone, so that each caller gets the answer its own
SubmitQuote gets; when the quote service cannot be reached, every caller gets
that failure.
"""

from __future__ import annotations

import asyncio

from queues.core.coalescing import Coalescing
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import ForwardedError

#: The most submissions BatchSubmitQuotes takes (quote_service.proto).
MAX_BATCH = 1000

Answer = quote_pb.SubmitQuoteResponse | Exception


class QuoteBatches:
    def __init__(self, quote: Downstream, stub: quote_grpc.QuoteServiceStub) -> None:
        self._quote = quote
        self._stub = stub
        self._batches = Coalescing(self._send_waiting, most=MAX_BATCH)

    async def submit(self, request: quote_pb.SubmitQuoteRequest) -> quote_pb.SubmitQuoteResponse:
        """What SubmitQuote(request) answers; raises what it raises
        (ForwardedError, DownstreamError)."""
        return await self._batches.call(request)

    async def _send_waiting(self, waiting: list[quote_pb.SubmitQuoteRequest]) -> list[Answer]:
        answers: list[Answer] = []
        while len(answers) < len(waiting):
            batch = _one_batch(waiting[len(answers) :])
            answers += await self._send(batch)
        return answers

    async def _send(self, batch: list[quote_pb.SubmitQuoteRequest]) -> list[Answer]:
        if len(batch) == 1:
            return [await self._send_alone(batch[0])]
        request = quote_pb.BatchSubmitQuotesRequest(requests=batch)
        try:
            response: quote_pb.BatchSubmitQuotesResponse = await self._quote.call(
                self._stub.BatchSubmitQuotes, request
            )
        except ForwardedError:
            return list(await asyncio.gather(*(self._send_alone(each) for each in batch)))
        except Exception as error:
            return [error] * len(batch)
        return list(response.responses)

    async def _send_alone(self, request: quote_pb.SubmitQuoteRequest) -> Answer:
        try:
            answer: quote_pb.SubmitQuoteResponse = await self._quote.call(
                self._stub.SubmitQuote, request
            )
        except Exception as error:
            return error
        return answer


def _one_batch(waiting: list[quote_pb.SubmitQuoteRequest]) -> list[quote_pb.SubmitQuoteRequest]:
    """The first submissions waiting, stopping before one whose request id is
    in the batch already (a batch refuses that)."""
    batch: list[quote_pb.SubmitQuoteRequest] = []
    seen: set[str] = set()
    for request in waiting:
        if request.request_id and request.request_id in seen:
            break
        seen.add(request.request_id)
        batch.append(request)
    return batch
