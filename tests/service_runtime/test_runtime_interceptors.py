"""The interceptor turns errors into statuses, also mid-stream, and logs one line per RPC."""

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from support.rpc_errors import reason

from queues.errors import NotFoundError
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.server import ServiceBinding, start_server

QUOTE_SERVICE = quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name
GET_MESSAGE = f"/{QUOTE_SERVICE}/GetMessage"
WATCH_MESSAGE = f"/{QUOTE_SERVICE}/WatchMessage"
GET_STATS = f"/{QUOTE_SERVICE}/GetStats"


async def test_an_error_raised_mid_stream_becomes_the_stream_status(stub, servicer):
    servicer.stream_length = 2
    servicer.error = NotFoundError("message", "m-1")

    call = stub.WatchMessage(quote_pb2.WatchMessageRequest(id="m-1"))
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for response in call:
            received.append(response.message.id)

    assert received == ["m-1", "m-1"]
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    status = await rpc_status.aio.from_call(call)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "MESSAGE_NOT_FOUND"


async def test_a_unary_call_is_logged_once_with_method_code_and_duration(stub, log_records):
    await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))

    fields = await log_records.wait_for_rpc(GET_MESSAGE)
    assert fields["code"] == "OK"
    assert isinstance(fields["duration_ms"], float)
    assert fields["duration_ms"] >= 0
    assert "messages_sent" not in fields
    assert len(log_records.rpc_fields()) == 1


async def test_a_failed_call_is_logged_with_its_final_code(stub, servicer, log_records):
    servicer.error = NotFoundError("message", "m-1")

    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))

    assert (await log_records.wait_for_rpc(GET_MESSAGE))["code"] == "NOT_FOUND"


async def test_a_stream_is_logged_with_the_number_of_messages_sent(stub, servicer, log_records):
    servicer.stream_length = 3

    received = [r async for r in stub.WatchMessage(quote_pb2.WatchMessageRequest(id="m-1"))]

    assert len(received) == 3
    fields = await log_records.wait_for_rpc(WATCH_MESSAGE)
    assert (fields["code"], fields["messages_sent"]) == ("OK", 3)


async def test_a_stream_the_client_cancels_is_logged_cancelled_without_a_traceback(
    stub, servicer, log_records
):
    servicer.stream_length = 1
    servicer.stream_holds = True
    call = stub.WatchMessage(quote_pb2.WatchMessageRequest(id="m-1"))
    await call.read()
    await servicer.stream_sent.wait()

    call.cancel()

    fields = await log_records.wait_for_rpc(WATCH_MESSAGE)
    assert (fields["code"], fields["messages_sent"]) == ("CANCELLED", 1)
    assert [r for r in log_records.records if r.exc_info or r.levelno >= logging.WARNING] == []


async def test_an_endless_stream_the_client_cancels_is_logged_cancelled(
    stub, servicer, log_records
):
    # Never awaiting between messages, the servicer is usually parked at a
    # yield when the call goes, so gRPC closes it rather than cancelling it.
    servicer.stream_length = 10**9
    call = stub.WatchMessage(quote_pb2.WatchMessageRequest(id="m-1"))
    await call.read()
    await call.read()

    call.cancel()

    fields = await log_records.wait_for_rpc(WATCH_MESSAGE)
    assert fields["code"] == "CANCELLED"
    assert fields["messages_sent"] >= 2
    assert [r for r in log_records.records if r.exc_info or r.levelno >= logging.WARNING] == []


async def test_a_call_cut_by_its_deadline_is_logged_deadline_exceeded(stub, servicer, log_records):
    # The deadline is what is tested; a second leaves the handler ample time
    # to start first, since a call that never reached it would not be logged.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetStats(quote_pb2.GetStatsRequest(), timeout=1.0)

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert servicer.stats_started.is_set()
    assert (await log_records.wait_for_rpc(GET_STATS))["code"] == "DEADLINE_EXCEEDED"


async def test_a_servicers_own_abort_passes_through_untouched(channel, log_records):
    health = health_pb2_grpc.HealthStub(channel)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    fields = await log_records.wait_for_rpc("/grpc.health.v1.Health/Check")
    assert fields["code"] == "NOT_FOUND"


async def test_nothing_is_logged_when_info_is_disabled(stub, log_records):
    logging.getLogger("service_runtime.rpc").setLevel(logging.WARNING)
    try:
        await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))
    finally:
        logging.getLogger("service_runtime.rpc").setLevel(logging.NOTSET)

    assert log_records.rpc_fields() == []


async def test_extra_interceptors_see_every_call(servicer):
    seen = []

    class Recording(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation, handler_call_details):
            seen.append(handler_call_details.method)
            return await continuation(handler_call_details)

    running = await start_server(
        [
            ServiceBinding(
                QUOTE_SERVICE, lambda s: quote_grpc.add_QuoteServiceServicer_to_server(servicer, s)
            )
        ],
        host="127.0.0.1",
        port=0,
        extra_interceptors=[Recording()],
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            await quote_grpc.QuoteServiceStub(channel).GetMessage(quote_pb2.GetMessageRequest())
    finally:
        await running.stop(None)

    assert seen == [GET_MESSAGE]


# Invalid UTF-8 in a string field, a truncated varint, a length past the end,
# and a field of wire type 7, which does not exist.
MALFORMED_BODIES = [b"\x0a\x02\xff\xfe", b"\x08\x80", b"\x0a\x05ab", b"\x0f"]


@pytest.mark.parametrize("body", MALFORMED_BODIES)
async def test_a_malformed_unary_request_is_invalid_argument_logged_once_without_traceback(
    channel, log_records, body
):
    call = channel.unary_unary(GET_MESSAGE, request_serializer=None, response_deserializer=None)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(body)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "the request body is not a valid quoteflow.quote.v1.GetMessageRequest"
    )
    assert reason(raised.value) == "MALFORMED_REQUEST"
    assert (await log_records.wait_for_rpc(GET_MESSAGE))["code"] == "INVALID_ARGUMENT"
    assert len(log_records.rpc_fields()) == 1
    assert [r for r in log_records.records if r.exc_info or r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("body", MALFORMED_BODIES)
async def test_a_malformed_stream_request_is_invalid_argument_before_any_message(
    channel, servicer, log_records, body
):
    servicer.stream_length = 3
    call = channel.unary_stream(WATCH_MESSAGE, request_serializer=None, response_deserializer=None)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        [response async for response in call(body)]

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "quoteflow.quote.v1.WatchMessageRequest" in raised.value.details()
    fields = await log_records.wait_for_rpc(WATCH_MESSAGE)
    assert (fields["code"], fields["messages_sent"]) == ("INVALID_ARGUMENT", 0)
    assert [r for r in log_records.records if r.exc_info or r.levelno >= logging.WARNING] == []


async def test_health_checks_are_logged_at_debug_and_other_calls_at_info(
    stub, channel, log_records
):
    health = health_pb2_grpc.HealthStub(channel)
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    await stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))

    check = await log_records.wait_for(
        lambda r: r.name == "service_runtime.rpc" and "Health/Check" in r.fields["method"]
    )
    get = await log_records.wait_for(
        lambda r: r.name == "service_runtime.rpc" and r.fields["method"] == GET_MESSAGE
    )
    assert (check.levelno, get.levelno) == (logging.DEBUG, logging.INFO)
