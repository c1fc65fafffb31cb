"""Every RPC of the three services, reflection's included, sent a body that
does not parse, answers INVALID_ARGUMENT naming the message type, and logs one
rpc line, no traceback."""

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from grpc_reflection.v1alpha import reflection_pb2
from support.rpc_errors import reason
from support.service_process import running_service

from quoteflow.processor.v1 import processor_service_pb2
from quoteflow.quote.v1 import quote_service_pb2
from quoteflow.requestor.v1 import requestor_service_pb2

SERVICES = {
    "quote_svc": quote_service_pb2.DESCRIPTOR.services_by_name["QuoteService"],
    "processor_svc": processor_service_pb2.DESCRIPTOR.services_by_name["ProcessorService"],
    "requestor_svc": requestor_service_pb2.DESCRIPTOR.services_by_name["RequestorService"],
}
# Streams its requests: each message of the stream is parsed on its own.
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].methods_by_name[
    "ServerReflectionInfo"
]
# Bodies no message can parse: a truncated varint, a field of wire type 7
# (there is none), and a valid b"\x0a\x02ab" with one bit of its length flipped.
ALWAYS_MALFORMED = [b"\x08\x80", b"\x0f", b"\x0a\x0aab"]
# Invalid UTF-8: malformed only where field 1 is a string.
BAD_UTF8 = b"\x0a\x02\xff\xfe"


def bodies_for(method: MethodDescriptor) -> list[bytes]:
    first = method.input_type.fields_by_number.get(1)
    is_string = first is not None and first.type == FieldDescriptor.TYPE_STRING
    return ALWAYS_MALFORMED + ([BAD_UTF8] if is_string else [])


async def call_raw(channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        both = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
        [response async for response in both(iter([body]))]
    elif method.server_streaming:
        stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        [response async for response in stream(body)]
    else:
        unary = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        await unary(body)


@pytest.mark.parametrize("module", SERVICES)
async def test_every_rpc_answers_a_malformed_body_invalid_argument_with_one_log_line(module):
    service = SERVICES[module]
    methods = [*service.methods, REFLECTION]
    async with (
        running_service(module) as process,
        grpc.aio.insecure_channel(process.address) as channel,
    ):
        calls = 0
        for method in methods:
            for body in bodies_for(method):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call_raw(channel, method, body)
                error = raised.value
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, body)
                expected = f"the request body is not a valid {method.input_type.full_name}"
                assert error.details() == expected
                assert reason(error) == "MALFORMED_REQUEST"
                calls += 1
        logged = [await process.read_log_until("rpc") for _ in range(calls)]

    assert {line["code"] for line in logged} == {"INVALID_ARGUMENT"}
    assert {line["method"] for line in logged} == {
        f"/{method.containing_service.full_name}/{method.name}" for method in methods
    }
    assert [line for line in process.log if "exc" in line or line["level"] == "ERROR"] == []
