"""AIP-193 for every error the services answer, each provoked through real
in-process servers: a google.rpc.Status with an ErrorInfo in the "quoteflow"
domain and an UPPER_SNAKE_CASE reason, plus a BadRequest for INVALID_ARGUMENT and
a RetryInfo for a RESOURCE_EXHAUSTED that will pass later.

One case per code each service answers. Exempt, since gRPC produces them itself
before or around any servicer: DEADLINE_EXCEEDED and CANCELLED of the caller's
own call, UNIMPLEMENTED for an unknown method, a request over the service's own
size limit, and the standard health and reflection services' own answers.
"""

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from support.processor_harness import ProcessorHarness, processor_harness
from support.quote_harness import QuoteHarness, StartQuote, submission
from support.requestor_harness import (
    FakeProcessorServer,
    RequestorHarness,
    start_requestor_harness,
    stop_requestor_harness,
)
from support.rpc_errors import details

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from quoteflow.requestor.v1 import requestor_service_pb2 as requestor_pb
from requestor_svc import convert as requestor_convert
from service_runtime.errors import DETAILS_METADATA_KEY

UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9_]+")
Code = grpc.StatusCode


@dataclass
class Services:
    """Starts what a case needs; everything is stopped after the test."""

    start_quote: StartQuote
    stack: contextlib.AsyncExitStack
    monkeypatch: pytest.MonkeyPatch

    async def quote(self, **overrides: object) -> QuoteHarness:
        return await self.start_quote(**overrides)

    async def processor(
        self, quote_address: str | None = None, **overrides: object
    ) -> ProcessorHarness:
        if quote_address is None:
            quote_address = (await self.quote()).server.address
        return await self.stack.enter_async_context(processor_harness(quote_address, **overrides))

    async def requestor(self) -> RequestorHarness:
        fake_processor = FakeProcessorServer()
        await fake_processor.start()
        self.stack.push_async_callback(fake_processor.stop)
        started: list[RequestorHarness] = []
        harness = await start_requestor_harness(started, fake_processor.address)
        self.stack.push_async_callback(stop_requestor_harness, harness)
        return harness

    def break_method(self, owner: object, name: str) -> None:
        """Make owner.name raise an error no status is mapped to."""

        def broken(*_: object, **__: object) -> None:
            raise RuntimeError("an error nobody planned for")

        self.monkeypatch.setattr(owner, name, broken)


@pytest.fixture
async def services(start_quote: StartQuote, monkeypatch) -> AsyncIterator[Services]:
    async with contextlib.AsyncExitStack() as stack:
        yield Services(start_quote, stack, monkeypatch)


async def refusal(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def first_of(stream: AsyncIterator[object]) -> object:
    return await anext(aiter(stream))


# -- the quote service ---------------------------------------------------------


async def submit_quote(quote: QuoteHarness, name: str, **fields: object) -> object:
    return await quote.stub.SubmitQuote(
        quote_pb.SubmitQuoteRequest(submission=submission(name), **fields)
    )


async def quote_invalid_argument(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    bad = quote_pb.SubmitQuoteRequest(submission=submission("Ada", coverage=0))
    return await refusal(quote.stub.SubmitQuote(bad))


async def quote_not_found(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    return await refusal(quote.stub.GetMessage(quote_pb.GetMessageRequest(id="nope")))


async def quote_failed_precondition(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    accepted = await quote.stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=submission()))
    # Only a dead-lettered message can be redriven.
    redrive = quote_pb.RedriveMessageRequest(id=accepted.message.id)
    return await refusal(quote.stub.RedriveMessage(redrive))


async def quote_already_exists(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    await submit_quote(quote, "first", request_id="req-1")
    return await refusal(submit_quote(quote, "other", request_id="req-1"))


async def quote_resource_exhausted(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote(max_size=1)
    quote.rating.hang.add("first")
    await submit_quote(quote, "first")
    return await refusal(submit_quote(quote, "overflow"))


async def submit_batch(quote: QuoteHarness, *names: str, **fields: object) -> object:
    requests = [quote_pb.SubmitQuoteRequest(submission=submission(n), **fields) for n in names]
    return await quote.stub.BatchSubmitQuotes(quote_pb.BatchSubmitQuotesRequest(requests=requests))


async def quote_batch_invalid_argument(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    return await refusal(submit_batch(quote))


async def quote_batch_already_exists(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    await submit_quote(quote, "first", request_id="req-1")
    return await refusal(submit_batch(quote, "other", request_id="req-1"))


async def quote_batch_resource_exhausted(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote(max_size=2)
    return await refusal(submit_batch(quote, "one", "two", "three"))


async def quote_unavailable(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    quote.server.refuse_new_calls()
    return await refusal(quote.stub.GetStats(quote_pb.GetStatsRequest()))


async def quote_internal(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    services.break_method(quote.queue, "stats")
    return await refusal(quote.stub.GetStats(quote_pb.GetStatsRequest()))


# -- the processor -------------------------------------------------------------


def proposal(order: str, proposal_id: str, **fields: object) -> processor_pb.SubmitProposalRequest:
    fields.setdefault("submission", submission(f"{order}-{proposal_id}"))
    return processor_pb.SubmitProposalRequest(
        order_req_id=order,
        proposal_id=proposal_id,
        **fields,
    )


async def processor_invalid_argument(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    bad_ids = processor_pb.SubmitProposalRequest(order_req_id="", proposal_id="P1")
    return await refusal(processor.stub.SubmitProposal(bad_ids))


async def processor_forwarded_invalid_argument(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    # The quote service checks the submission; its refusal reaches the caller as it was.
    bad = proposal("O", "P1", submission=submission("Ada", coverage=0))
    return await refusal(processor.stub.SubmitProposal(bad))


async def processor_already_exists(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    await processor.stub.SubmitProposal(proposal("O", "P1", request_id="req-1"))
    return await refusal(processor.stub.SubmitProposal(proposal("O", "P2", request_id="req-1")))


async def processor_failed_precondition(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    await processor.stub.CompleteOrder(processor_pb.CompleteOrderRequest(order_req_id="DONE"))
    return await refusal(processor.stub.SubmitProposal(proposal("DONE", "late")))


async def processor_out_of_range(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    await processor.stub.CompleteOrder(processor_pb.CompleteOrderRequest(order_req_id="SHORT"))
    beyond = processor_pb.WatchOrderRequest(order_req_id="SHORT", after_sequence=5)
    return await refusal(first_of(processor.stub.WatchOrder(beyond)))


async def processor_not_found(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    await processor.stub.CompleteOrder(processor_pb.CompleteOrderRequest(order_req_id="OLD"))
    # As the retention sweep does: the order goes, its tombstone stays.
    await processor.processor.orders.remove("OLD")
    expired = processor_pb.WatchOrderRequest(order_req_id="OLD")
    return await refusal(first_of(processor.stub.WatchOrder(expired)))


async def processor_watch_limit(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor(max_awaited_orders=1)
    waiting = processor.stub.WatchOrder(processor_pb.WatchOrderRequest(order_req_id="FIRST"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while processor.processor.orders.watchers_count < 1:
        assert loop.time() < deadline, "the first watcher never waited"
        await asyncio.sleep(0.005)
    second = processor_pb.WatchOrderRequest(order_req_id="SECOND")
    try:
        return await refusal(first_of(processor.stub.WatchOrder(second)))
    finally:
        waiting.cancel()


async def processor_forwarded_resource_exhausted(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote(max_size=1)
    processor = await services.processor(quote.server.address)
    quote.rating.hang.add("O-P1")
    await processor.stub.SubmitProposal(proposal("O", "P1"))
    return await refusal(processor.stub.SubmitProposal(proposal("O", "P2")))


async def processor_oversized_for_the_quote_service(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    # Within the processor's 4 MiB limit, but not once the quote request adds its
    # request_id: the quote service refuses it (REQUEST_TOO_LARGE), and the
    # processor passes that refusal on as it is.
    # The submission's own fields are bounded far below that, so the bulk is a
    # field unknown to this version, which protobuf keeps and passes on.
    limit = 4 * 1024 * 1024

    def padded(size: int) -> processor_pb.SubmitProposalRequest:
        unknown = b"\x9a\x06" + varint(size) + b"x" * size  # field 99, length-delimited
        bulky = quote_pb.Submission.FromString(submission().SerializeToString() + unknown)
        return proposal("O", "P1", submission=bulky)

    first = padded(limit - 100)
    oversized = padded(limit - 100 + limit - first.ByteSize())
    assert oversized.ByteSize() == limit
    return await refusal(processor.stub.SubmitProposal(oversized))


def varint(value: int) -> bytes:
    """value in protobuf's base-128 varint encoding."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def processor_unavailable(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    processor.processor.server.refuse_new_calls()
    return await refusal(processor.stub.GetStats(processor_pb.GetStatsRequest()))


async def processor_downstream_unavailable(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor(unused_address(), call_deadline=1.0)
    return await refusal(processor.stub.SubmitProposal(proposal("O", "P1")))


async def processor_deadline_exceeded(services: Services) -> grpc.aio.AioRpcError:
    quote = await services.quote()
    processor = await services.processor(quote.server.address, call_deadline=0.2)

    async def never_answers(*_: object, **__: object) -> None:
        await asyncio.Event().wait()

    services.monkeypatch.setattr(quote.queue, "submit", never_answers)
    return await refusal(processor.stub.SubmitProposal(proposal("O", "P1")))


async def processor_internal(services: Services) -> grpc.aio.AioRpcError:
    processor = await services.processor()
    services.break_method(processor.processor.orders, "stats")
    return await refusal(processor.stub.GetStats(processor_pb.GetStatsRequest()))


def unused_address() -> str:
    """An address nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


# -- the requestor -------------------------------------------------------------


async def requestor_invalid_argument(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    return await refusal(requestor.stub.PlaceOrder(requestor_pb.PlaceOrderRequest()))


async def requestor_not_found(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    unknown = requestor_pb.GetTaskResultRequest(task_id="nope")
    return await refusal(requestor.stub.GetTaskResult(unknown))


async def requestor_failed_precondition(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    placed = await requestor.place("ORD")
    cancel = requestor_pb.CancelTaskRequest(task_id=placed.task_id)
    await requestor.stub.CancelTask(cancel)
    return await refusal(requestor.stub.CancelTask(cancel))


async def requestor_already_exists(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    await requestor.place("ORD-1", request_id="req-1")
    return await refusal(requestor.place("ORD-2", request_id="req-1"))


async def requestor_unavailable(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    requestor.requestor.server.refuse_new_calls()
    return await refusal(requestor.stub.GetStats(requestor_pb.GetStatsRequest()))


async def requestor_internal(services: Services) -> grpc.aio.AioRpcError:
    requestor = await services.requestor()
    services.break_method(requestor_convert, "stats_to_pb")
    return await refusal(requestor.stub.GetStats(requestor_pb.GetStatsRequest()))


Provoke = Callable[[Services], Awaitable[grpc.aio.AioRpcError]]

#: (case, the code it answers, its ErrorInfo's reason)
CASES: list[tuple[Provoke, Code, str]] = [
    (quote_invalid_argument, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (quote_not_found, Code.NOT_FOUND, "MESSAGE_NOT_FOUND"),
    (quote_failed_precondition, Code.FAILED_PRECONDITION, "MESSAGE_INVALID_STATE"),
    (quote_already_exists, Code.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
    (quote_resource_exhausted, Code.RESOURCE_EXHAUSTED, "QUEUE_FULL"),
    (quote_batch_invalid_argument, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (quote_batch_already_exists, Code.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
    (quote_batch_resource_exhausted, Code.RESOURCE_EXHAUSTED, "QUEUE_FULL"),
    (quote_unavailable, Code.UNAVAILABLE, "SHUTTING_DOWN"),
    (quote_internal, Code.INTERNAL, "INTERNAL"),
    (processor_invalid_argument, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (processor_forwarded_invalid_argument, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (processor_already_exists, Code.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
    (processor_failed_precondition, Code.FAILED_PRECONDITION, "ORDER_INVALID_STATE"),
    (processor_out_of_range, Code.OUT_OF_RANGE, "CURSOR_OUT_OF_RANGE"),
    (processor_not_found, Code.NOT_FOUND, "ORDER_EXPIRED"),
    (processor_watch_limit, Code.RESOURCE_EXHAUSTED, "WATCH_LIMIT_REACHED"),
    (processor_forwarded_resource_exhausted, Code.RESOURCE_EXHAUSTED, "QUEUE_FULL"),
    (
        processor_oversized_for_the_quote_service,
        Code.RESOURCE_EXHAUSTED,
        "REQUEST_TOO_LARGE",
    ),
    (processor_unavailable, Code.UNAVAILABLE, "SHUTTING_DOWN"),
    (processor_downstream_unavailable, Code.UNAVAILABLE, "DOWNSTREAM_UNAVAILABLE"),
    (processor_deadline_exceeded, Code.DEADLINE_EXCEEDED, "DOWNSTREAM_DEADLINE_EXCEEDED"),
    (processor_internal, Code.INTERNAL, "INTERNAL"),
    (requestor_invalid_argument, Code.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (requestor_not_found, Code.NOT_FOUND, "TASK_NOT_FOUND"),
    (requestor_failed_precondition, Code.FAILED_PRECONDITION, "TASK_INVALID_STATE"),
    (requestor_already_exists, Code.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
    (requestor_unavailable, Code.UNAVAILABLE, "SHUTTING_DOWN"),
    (requestor_internal, Code.INTERNAL, "INTERNAL"),
]

#: A full queue passes; a request too large for the quote service never will.
NEVER_RETRYABLE = {"REQUEST_TOO_LARGE"}


@pytest.mark.parametrize(
    ("provoke", "code", "expected_reason"),
    [pytest.param(*case, id=case[0].__name__) for case in CASES],
)
async def test_every_error_carries_aip_193_details(
    services: Services, provoke: Provoke, code: Code, expected_reason: str
):
    error = await provoke(services)

    assert error.code() == code, error.details()
    sent = [key for key, _ in error.trailing_metadata() or ()]
    assert DETAILS_METADATA_KEY in sent, f"{code.name} came without a google.rpc.Status"
    found = details(error)
    info = found.get(error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo), f"no ErrorInfo in {found}"
    assert info.domain == "quoteflow"
    assert UPPER_SNAKE.fullmatch(info.reason), info.reason
    assert info.reason == expected_reason
    if code is Code.INVALID_ARGUMENT:
        bad_request = found.get(error_details_pb2.BadRequest)
        assert isinstance(bad_request, error_details_pb2.BadRequest)
        assert bad_request.field_violations
    if code is Code.RESOURCE_EXHAUSTED and info.reason not in NEVER_RETRYABLE:
        retry = found.get(error_details_pb2.RetryInfo)
        assert isinstance(retry, error_details_pb2.RetryInfo)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0


def test_every_service_has_a_case_for_each_code_it_answers():
    """The codes each service answers (besides the exempt ones), from the error
    table in service_runtime.errors and the service's own paths."""
    covered: dict[str, set[Code]] = {}
    for provoke, code, _ in CASES:
        covered.setdefault(provoke.__name__.split("_")[0], set()).add(code)
    common = {
        Code.INVALID_ARGUMENT,
        Code.ALREADY_EXISTS,
        Code.FAILED_PRECONDITION,
        Code.UNAVAILABLE,
        Code.INTERNAL,
    }
    assert covered == {
        "quote": common | {Code.NOT_FOUND, Code.RESOURCE_EXHAUSTED},
        "processor": common
        | {Code.NOT_FOUND, Code.OUT_OF_RANGE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED},
        "requestor": common | {Code.NOT_FOUND},
    }
