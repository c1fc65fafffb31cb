"""SubmitQuote calls made at once, sent as BatchSubmitQuotes.

One batch is in flight at a time: the first submission goes out alone, at
once, and those that arrive while a call is in flight go together in the
next, up to the batch limit, as a group commit does. So a lone proposal waits
for nothing, and a burst of proposals costs the quote service one call per
round trip rather than one per proposal.

A batch is all or nothing. When the quote service refuses one (a bad item, a
request id reused, a queue with no room for all of it), each of its
submissions is sent again alone, so that each caller gets the answer its own
SubmitQuote gets; when the quote service cannot be reached, every caller gets
that failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.downstream import Downstream
from service_runtime.errors import ForwardedError

#: The most submissions BatchSubmitQuotes takes (quote_service.proto).
MAX_BATCH = 1000


@dataclass
class _Waiting:
    request: quote_pb.SubmitQuoteRequest
    answer: asyncio.Future[quote_pb.SubmitQuoteResponse] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        # Its caller may have gone away: a failure nobody awaits is not an
        # error of its own.
        self.answer.add_done_callback(lambda done: done.cancelled() or done.exception())

    def answered(self, answer: quote_pb.SubmitQuoteResponse) -> None:
        if not self.answer.done():
            self.answer.set_result(answer)

    def failed(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


class QuoteBatches:
    def __init__(self, quote: Downstream, stub: quote_grpc.QuoteServiceStub) -> None:
        self._quote = quote
        self._stub = stub
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, request: quote_pb.SubmitQuoteRequest) -> quote_pb.SubmitQuoteResponse:
        """What SubmitQuote(request) answers; raises what it raises
        (ForwardedError, DownstreamError)."""
        waiting = _Waiting(request)
        self._waiting.append(waiting)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_waiting())
        # Shielded: a caller that goes away leaves its submission to the batch.
        return await asyncio.shield(waiting.answer)

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                batch = _one_batch(self._waiting)
                self._waiting = self._waiting[len(batch) :]
                await self._send(batch)
        finally:
            self._sender = None

    async def _send(self, batch: list[_Waiting]) -> None:
        if len(batch) == 1:
            await self._send_alone(batch[0])
            return
        request = quote_pb.BatchSubmitQuotesRequest(requests=[w.request for w in batch])
        try:
            response: quote_pb.BatchSubmitQuotesResponse = await self._quote.call(
                self._stub.BatchSubmitQuotes, request
            )
        except ForwardedError:
            await asyncio.gather(*(self._send_alone(waiting) for waiting in batch))
            return
        except Exception as error:
            for waiting in batch:
                waiting.failed(error)
            return
        for waiting, answer in zip(batch, response.responses, strict=True):
            waiting.answered(answer)

    async def _send_alone(self, waiting: _Waiting) -> None:
        try:
            answer = await self._quote.call(self._stub.SubmitQuote, waiting.request)
        except Exception as error:
            waiting.failed(error)
        else:
            waiting.answered(answer)


def _one_batch(waiting: list[_Waiting]) -> list[_Waiting]:
    """The first submissions waiting, up to MAX_BATCH, stopping before one
    whose request id is in the batch already (a batch refuses that)."""
    batch: list[_Waiting] = []
    seen: set[str] = set()
    for entry in waiting[:MAX_BATCH]:
        request_id = entry.request.request_id
        if request_id and request_id in seen:
            break
        seen.add(request_id)
        batch.append(entry)
    return batch
