"""Reading the rich error details (AIP-193) a failed call carries, as a client would."""

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


def details(error: grpc.aio.AioRpcError) -> dict[type[Message], Message]:
    """The google.rpc detail messages of a failed call, by type."""
    raw = next(value for key, value in error.trailing_metadata() or () if key == _DETAILS_KEY)
    status = status_pb2.Status.FromString(raw)
    assert status.code == error.code().value[0]
    found: dict[type[Message], Message] = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
    ):
        for packed in status.details:
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                found[kind] = message
    return found


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    bad_request = details(error)[error_details_pb2.BadRequest]
    return {v.field: v.description for v in bad_request.field_violations}


def reason(error: grpc.aio.AioRpcError) -> str:
    info = details(error)[error_details_pb2.ErrorInfo]
    assert info.domain == "quoteflow"
    return info.reason
