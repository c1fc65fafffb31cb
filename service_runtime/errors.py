"""Precise gRPC statuses with AIP-193 rich details, and the one table mapping errors to them.

Every status the services answer with carries a google.rpc.ErrorInfo in the
domain "quoteflow", so clients branch on a stable reason rather than on words.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from queues import errors as queue_errors
from queues.storage import StoreError

DOMAIN = "quoteflow"
#: The trailing metadata entry that carries a status's google.rpc.Status.
DETAILS_METADATA_KEY = "grpc-status-details-bin"

_NOT_UPPER_SNAKE = re.compile(r"[^A-Z0-9]+")

# A downstream's own client errors say nothing about our caller's request, so
# only the codes that tell the caller "try again" pass through unchanged.
_PASSED_THROUGH_DOWNSTREAM_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. "submission.coverage_amount") and why."""

    field: str
    description: str


class InvalidArgumentError(Exception):
    """A request failed validation; carries every violation found, not just the first."""

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        listed = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid request: {listed}")
        self.violations = list(violations)


class DownstreamError(Exception):
    """A call this service made to another service failed."""

    def __init__(self, downstream: str, code: grpc.StatusCode, detail: str) -> None:
        super().__init__(f"{downstream} failed with {code.name}: {detail}")
        #: Who was called, e.g. "quote service at 127.0.0.1:50051".
        self.downstream = downstream
        #: The code the downstream answered with, kept for diagnosis.
        self.downstream_code = code
        #: The code to answer our own caller with.
        self.code = (
            code if code in _PASSED_THROUGH_DOWNSTREAM_CODES else grpc.StatusCode.UNAVAILABLE
        )
        self.detail = detail


class ForwardedError(Exception):
    """A downstream refused our caller's own request (bad input, full queue…); the
    caller gets the downstream's status as it was, details included (a status
    that came without details gets an ErrorInfo naming the downstream)."""

    def __init__(self, downstream: str, status: grpc.Status) -> None:
        super().__init__(f"{downstream} refused the request: {status.details}")
        self.downstream = downstream
        self.status = status


def rich_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    metadata: Mapping[str, str] | None = None,
    violations: Sequence[FieldViolation] = (),
    retry_after: float | None = None,
) -> grpc.Status:
    """Build a status for context.abort_with_status carrying ErrorInfo and, if given,
    a BadRequest (one entry per violation) and a RetryInfo."""
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=_upper_snake(reason), domain=DOMAIN, metadata=dict(metadata or {})
        )
    )
    if violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in violations
                ]
            )
        )
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(retry_after * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return rpc_status.to_status(status)


def status_for_exception(exc: BaseException) -> grpc.Status | None:
    """The status a known error answers with, or None for an error nobody planned for."""
    # Walking the MRO lets a subclass of a mapped error inherit its mapping.
    for cls in type(exc).__mro__:
        build = _STATUS_BUILDERS.get(cls)
        if build is not None:
            return build(exc)
    return None


def _upper_snake(text: str) -> str:
    return _NOT_UPPER_SNAKE.sub("_", text.upper()).strip("_")


def _invalid_argument(exc: InvalidArgumentError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(exc),
        reason="INVALID_ARGUMENT",
        violations=exc.violations,
    )


def _not_found(exc: queue_errors.NotFoundError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.NOT_FOUND,
        str(exc),
        reason=f"{exc.kind}_NOT_FOUND",
        metadata={"id": exc.key},
    )


def _expired(exc: queue_errors.ExpiredError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.NOT_FOUND,
        str(exc),
        reason=f"{exc.kind}_EXPIRED",
        metadata={"id": exc.key},
    )


def _invalid_state(exc: queue_errors.InvalidStateError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.FAILED_PRECONDITION,
        str(exc),
        reason=f"{exc.kind}_INVALID_STATE",
        metadata={"id": exc.key, "state": exc.state, "operation": exc.operation},
    )


def _queue_full(exc: queue_errors.QueueFullError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        str(exc),
        reason="QUEUE_FULL",
        metadata={"maxSize": str(exc.max_size)},
        retry_after=exc.retry_after,
    )


def _watch_limit(exc: queue_errors.WatchLimitError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        str(exc),
        reason="WATCH_LIMIT_REACHED",
        metadata={"limit": str(exc.limit)},
        retry_after=exc.retry_after,
    )


def _request_conflict(exc: queue_errors.RequestConflictError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.ALREADY_EXISTS,
        str(exc),
        reason="REQUEST_ID_REUSED",
        metadata={"requestId": exc.request_id},
    )


def _closed(exc: queue_errors.ClosedError) -> grpc.Status:
    return rich_status(grpc.StatusCode.UNAVAILABLE, str(exc), reason="SHUTTING_DOWN")


def _cursor_out_of_range(exc: queue_errors.CursorOutOfRangeError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.OUT_OF_RANGE,
        str(exc),
        reason="CURSOR_OUT_OF_RANGE",
        metadata={"id": exc.key, "cursor": str(exc.cursor), "last": str(exc.last)},
    )


def _store_failed(exc: StoreError) -> grpc.Status:
    return rich_status(
        grpc.StatusCode.UNAVAILABLE,
        f"the request could not be recorded durably, so nothing was accepted: {exc}",
        reason="STORAGE_UNAVAILABLE",
    )


def _downstream(exc: DownstreamError) -> grpc.Status:
    return rich_status(
        exc.code,
        str(exc),
        reason=f"DOWNSTREAM_{exc.code.name}",
        metadata={"downstream": exc.downstream, "downstreamCode": exc.downstream_code.name},
    )


def _forwarded(exc: ForwardedError) -> grpc.Status:
    if any(key == DETAILS_METADATA_KEY for key, _ in exc.status.trailing_metadata):
        return exc.status
    # Refused by the downstream's gRPC rather than by its servicer (a message
    # over its size limit, say), the status came without details: it gets ours.
    code = exc.status.code
    return rich_status(
        code,
        str(exc),
        reason=f"DOWNSTREAM_{code.name}",
        metadata={"downstream": exc.downstream, "downstreamCode": code.name},
    )


_STATUS_BUILDERS: Mapping[type[BaseException], Callable[[Any], grpc.Status]] = {
    InvalidArgumentError: _invalid_argument,
    queue_errors.NotFoundError: _not_found,
    queue_errors.ExpiredError: _expired,
    queue_errors.InvalidStateError: _invalid_state,
    queue_errors.QueueFullError: _queue_full,
    queue_errors.WatchLimitError: _watch_limit,
    queue_errors.RequestConflictError: _request_conflict,
    queue_errors.ClosedError: _closed,
    StoreError: _store_failed,
    queue_errors.CursorOutOfRangeError: _cursor_out_of_range,
    DownstreamError: _downstream,
    ForwardedError: _forwarded,
}
