"""Known errors answer with precise codes and AIP-193 details the client can decode."""

import logging

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from queues.errors import (
    ClosedError,
    InvalidStateError,
    NotFoundError,
    QueueFullError,
    RequestConflictError,
)
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from service_runtime.errors import (
    DownstreamError,
    FieldViolation,
    InvalidArgumentError,
    rich_status,
    status_for_exception,
)


def unpack(status, detail_type):
    found = [d for d in status.details if d.Is(detail_type.DESCRIPTOR)]
    assert len(found) == 1, f"expected one {detail_type.DESCRIPTOR.name}, found {len(found)}"
    message = detail_type()
    found[0].Unpack(message)
    return message


def has_detail(status, detail_type) -> bool:
    return any(d.Is(detail_type.DESCRIPTOR) for d in status.details)


async def call_failing(stub, servicer, error):
    servicer.error = error
    call = stub.GetMessage(quote_pb2.GetMessageRequest(id="m-1"))
    with pytest.raises(grpc.aio.AioRpcError):
        await call
    return call, await rpc_status.aio.from_call(call)


async def test_invalid_argument_carries_one_field_violation_per_bad_field(stub, servicer):
    error = InvalidArgumentError(
        [
            FieldViolation("submission.applicant_name", "is required"),
            FieldViolation("submission.coverage_amount", "must be 1 to 50,000,000"),
        ]
    )

    call, status = await call_failing(stub, servicer, error)

    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await call.details() == str(error)
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "quoteflow")
    violations = unpack(status, error_details_pb2.BadRequest).field_violations
    assert [(v.field, v.description) for v in violations] == [
        ("submission.applicant_name", "is required"),
        ("submission.coverage_amount", "must be 1 to 50,000,000"),
    ]
    assert not has_detail(status, error_details_pb2.RetryInfo)


async def test_queue_full_tells_the_client_when_to_retry(stub, servicer):
    call, status = await call_failing(stub, servicer, QueueFullError(max_size=100, retry_after=2.5))

    assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("QUEUE_FULL", "quoteflow")
    assert info.metadata["maxSize"] == "100"
    delay = unpack(status, error_details_pb2.RetryInfo).retry_delay
    assert (delay.seconds, delay.nanos) == (2, 500_000_000)
    assert not has_detail(status, error_details_pb2.BadRequest)


@pytest.mark.parametrize(
    ("error", "code", "reason", "metadata"),
    [
        (
            NotFoundError("message", "m-9"),
            grpc.StatusCode.NOT_FOUND,
            "MESSAGE_NOT_FOUND",
            {"id": "m-9"},
        ),
        (
            NotFoundError("dead letter", "m-9"),
            grpc.StatusCode.NOT_FOUND,
            "DEAD_LETTER_NOT_FOUND",
            {"id": "m-9"},
        ),
        (
            InvalidStateError("message", "m-9", "COMPLETED", "cancel"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "MESSAGE_INVALID_STATE",
            {"id": "m-9", "state": "COMPLETED", "operation": "cancel"},
        ),
        (
            RequestConflictError("req-7"),
            grpc.StatusCode.ALREADY_EXISTS,
            "REQUEST_ID_REUSED",
            {"requestId": "req-7"},
        ),
        (ClosedError(), grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", {}),
        (
            DownstreamError(
                "quote service at 127.0.0.1:50051", grpc.StatusCode.UNAVAILABLE, "refused"
            ),
            grpc.StatusCode.UNAVAILABLE,
            "DOWNSTREAM_UNAVAILABLE",
            {"downstream": "quote service at 127.0.0.1:50051", "downstreamCode": "UNAVAILABLE"},
        ),
        (
            DownstreamError("processor", grpc.StatusCode.DEADLINE_EXCEEDED, "too slow"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "DOWNSTREAM_DEADLINE_EXCEEDED",
            {"downstream": "processor", "downstreamCode": "DEADLINE_EXCEEDED"},
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_each_known_error_answers_its_code_reason_and_metadata(
    stub, servicer, error, code, reason, metadata
):
    call, status = await call_failing(stub, servicer, error)

    assert await call.code() == code
    assert await call.details() == str(error)
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == (reason, "quoteflow")
    assert dict(info.metadata) == metadata


async def test_downstream_error_message_names_the_downstream(stub, servicer):
    error = DownstreamError("quote service at 127.0.0.1:50051", grpc.StatusCode.UNAVAILABLE, "x")

    call, _ = await call_failing(stub, servicer, error)

    assert "quote service at 127.0.0.1:50051" in await call.details()


@pytest.mark.parametrize(
    ("downstream_code", "answered"),
    [
        (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED),
        (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE),
        (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_downstream_error_passes_through_only_retryable_codes(downstream_code, answered):
    error = DownstreamError("processor", downstream_code, "detail")

    assert error.code == answered
    assert error.downstream_code == downstream_code


async def test_unknown_error_answers_internal_without_leaking_its_text(stub, servicer, log_records):
    secret = "password=hunter2 at /srv/quote/db.py:42"

    call, status = await call_failing(stub, servicer, RuntimeError(secret))

    assert await call.code() == grpc.StatusCode.INTERNAL
    assert secret not in await call.details()
    assert secret not in str(status)
    assert unpack(status, error_details_pb2.ErrorInfo).reason == "INTERNAL"
    logged = await log_records.wait_for(lambda r: r.exc_info is not None)
    assert logged.levelno == logging.ERROR
    assert secret in str(logged.exc_info[1])


def test_unknown_exception_has_no_status():
    assert status_for_exception(KeyError("x")) is None


def test_subclass_of_a_known_error_gets_its_mapping():
    class MessageGone(NotFoundError):
        pass

    status = status_for_exception(MessageGone("message", "m-1"))

    assert status is not None
    assert status.code == grpc.StatusCode.NOT_FOUND


def test_rich_status_normalises_the_reason_to_upper_snake():
    status = rich_status(grpc.StatusCode.ABORTED, "retry", reason="lost race-condition")

    (key, value), *_ = status.trailing_metadata
    decoded = status_pb2.Status.FromString(value)
    assert key == "grpc-status-details-bin"
    assert unpack(decoded, error_details_pb2.ErrorInfo).reason == "LOST_RACE_CONDITION"
