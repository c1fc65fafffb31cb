"""QuoteService: translates between quoteflow.quote.v1 and the message queue.

Errors raised by the queue or by request checks are turned into precise
statuses by service_runtime's interceptor, so each method is a translation.
Each response is built empty and its message written into it in place, which
spares protobuf a copy of the whole QueueMessage.
"""

from collections.abc import AsyncIterator
from typing import Final

import grpc

from quote_svc import convert, page_token
from quote_svc.quote_queue import QuoteQueue
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from service_runtime.validation import require_id

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
#: WatchStats' shortest time between answers, unless asked otherwise, and its bounds.
DEFAULT_STATS_INTERVAL = 1.0
STATS_INTERVAL_RANGE = (0.1, 60.0)
#: When nothing changes, WatchStats still answers this often: the ages move on.
STATS_REFRESH = 10.0

# gRPC clients refuse a received message over 4 MiB unless told otherwise, and
# page_size alone cannot keep a page under it: 1,000 messages of the largest
# kind (about 15.4 KB each: the longest texts in 4-byte characters and a
# reviewed quote) make some 15 MB. So a page also ends before its messages pass
# this many serialized bytes. The 256 KiB left over is far more than the rest
# of the response (next_page_token, under 100 bytes) takes, so a field added to
# ListMessagesResponse later does not push a full page over.
MAX_PAGE_BYTES: Final = 4 * 1024 * 1024 - 256 * 1024


class QuoteServicer(pb_grpc.QuoteServiceServicer):
    def __init__(self, queue: QuoteQueue) -> None:
        self._queue = queue

    async def SubmitQuote(
        self,
        request: pb.SubmitQuoteRequest,
        context: grpc.aio.ServicerContext[pb.SubmitQuoteRequest, pb.SubmitQuoteResponse],
    ) -> pb.SubmitQuoteResponse:
        args = convert.submit_args(request)
        submitted = await self._queue.submit(
            args.job,
            priority=args.priority,
            request_id=args.request_id,
            max_retries=args.max_retries,
            attempt_timeout=args.attempt_timeout,
            fairness_key=args.fairness_key,
            fairness_weight=args.fairness_weight,
            run_at=args.run_at,
            delay=args.delay,
        )
        response = pb.SubmitQuoteResponse()
        convert.set_submitted(response, submitted)
        return response

    async def BatchSubmitQuotes(
        self,
        request: pb.BatchSubmitQuotesRequest,
        context: grpc.aio.ServicerContext[
            pb.BatchSubmitQuotesRequest, pb.BatchSubmitQuotesResponse
        ],
    ) -> pb.BatchSubmitQuotesResponse:
        submitted = await self._queue.submit_many(convert.batch_submit_items(request))
        response = pb.BatchSubmitQuotesResponse()
        add = response.responses.add
        for each in submitted:
            convert.set_submitted(add(), each)
        return response

    async def RunQuote(
        self,
        request: pb.RunQuoteRequest,
        context: grpc.aio.ServicerContext[pb.RunQuoteRequest, pb.RunQuoteResponse],
    ) -> pb.RunQuoteResponse:
        args = convert.submit_args(request)
        message = await self._queue.run_inline(
            args.job,
            priority=args.priority,
            attempt_timeout=args.attempt_timeout,
            fairness_key=args.fairness_key,
        )
        return convert.with_message(pb.RunQuoteResponse(), message)

    async def GetMessage(
        self,
        request: pb.GetMessageRequest,
        context: grpc.aio.ServicerContext[pb.GetMessageRequest, pb.GetMessageResponse],
    ) -> pb.GetMessageResponse:
        message = await self._queue.get(require_id("id", request.id))
        return convert.with_message(pb.GetMessageResponse(), message)

    async def WatchMessage(
        self,
        request: pb.WatchMessageRequest,
        context: grpc.aio.ServicerContext[pb.WatchMessageRequest, pb.WatchMessageResponse],
    ) -> AsyncIterator[pb.WatchMessageResponse]:
        async for message in self._queue.watch(require_id("id", request.id)):
            yield convert.with_message(pb.WatchMessageResponse(), message)

    async def ListMessages(
        self,
        request: pb.ListMessagesRequest,
        context: grpc.aio.ServicerContext[pb.ListMessagesRequest, pb.ListMessagesResponse],
    ) -> pb.ListMessagesResponse:
        args = convert.list_args(request, default_size=DEFAULT_PAGE_SIZE, max_size=MAX_PAGE_SIZE)
        filters = f"{request.status}/{request.priority}/{int(args.dead_lettered_only)}"
        messages, cursor = await self._queue.list_messages(
            status=args.status,
            priority=args.priority,
            dead_lettered_only=args.dead_lettered_only,
            after_seq=page_token.decode(request.page_token, filters),
            limit=args.page_size,
        )
        response = pb.ListMessagesResponse()
        entries = response.messages
        page_bytes = 0
        for taken, message in enumerate(messages):
            entry = entries.add()
            convert.set_message(entry, message)
            # Only this message is sized, so a page costs O(its length).
            page_bytes += _entry_bytes(entry.ByteSize())
            if page_bytes > MAX_PAGE_BYTES and taken > 0:
                # The page ends before this message, and the next one starts
                # at it. The first message always goes in, so a listing
                # advances (one message is bounded far below 4 MiB: see
                # ListMessages in quote_service.proto).
                del entries[-1]
                cursor = messages[taken - 1].seq
                break
        if cursor is not None:
            response.next_page_token = page_token.encode(cursor, filters)
        return response

    async def CancelMessage(
        self,
        request: pb.CancelMessageRequest,
        context: grpc.aio.ServicerContext[pb.CancelMessageRequest, pb.CancelMessageResponse],
    ) -> pb.CancelMessageResponse:
        message = await self._queue.cancel(require_id("id", request.id))
        return convert.with_message(pb.CancelMessageResponse(), message)

    async def RedriveMessage(
        self,
        request: pb.RedriveMessageRequest,
        context: grpc.aio.ServicerContext[pb.RedriveMessageRequest, pb.RedriveMessageResponse],
    ) -> pb.RedriveMessageResponse:
        message = await self._queue.redrive(require_id("id", request.id))
        return convert.with_message(pb.RedriveMessageResponse(), message)

    async def SetRateLimit(
        self,
        request: pb.SetRateLimitRequest,
        context: grpc.aio.ServicerContext[pb.SetRateLimitRequest, pb.SetRateLimitResponse],
    ) -> pb.SetRateLimitResponse:
        key, limit = convert.rate_limit_args(request)
        await self._queue.set_rate_limit(key, limit)
        return convert.rate_limit_to_pb(key, limit)

    async def ReviewQuote(
        self,
        request: pb.ReviewQuoteRequest,
        context: grpc.aio.ServicerContext[pb.ReviewQuoteRequest, pb.ReviewQuoteResponse],
    ) -> pb.ReviewQuoteResponse:
        args = convert.review_args(request)
        message = await self._queue.review(args.message_id, args.decision, args.reviewer, args.note)
        return convert.with_message(pb.ReviewQuoteResponse(), message)

    async def GetStats(
        self,
        request: pb.GetStatsRequest,
        context: grpc.aio.ServicerContext[pb.GetStatsRequest, pb.GetStatsResponse],
    ) -> pb.GetStatsResponse:
        return convert.stats_to_pb(await self._queue.stats())

    async def WatchStats(
        self,
        request: pb.WatchStatsRequest,
        context: grpc.aio.ServicerContext[pb.WatchStatsRequest, pb.WatchStatsResponse],
    ) -> AsyncIterator[pb.WatchStatsResponse]:
        every = convert.stats_interval(
            request, default=DEFAULT_STATS_INTERVAL, bounds=STATS_INTERVAL_RANGE
        )
        async for stats in self._queue.watch_stats(every=every, refresh=max(every, STATS_REFRESH)):
            response = pb.WatchStatsResponse()
            response.stats.CopyFrom(convert.stats_to_pb(stats))
            yield response


def _entry_bytes(message_bytes: int) -> int:
    """What one QueueMessage of message_bytes adds to ListMessagesResponse: its
    bytes, the field's one-byte tag and the varint of its length."""
    return 1 + _varint_bytes(message_bytes) + message_bytes


def _varint_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)
