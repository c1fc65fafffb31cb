"""Turning a failed call into one clear line, and into one JSON object for scripts.

As googleapis python-api-core's ``exceptions.from_grpc_error`` does, the
``google.rpc.Status`` a quoteflow service puts in the trailing metadata
(``grpc-status-details-bin``, AIP-193) is decoded, so the line can say what to
fix (the BadRequest's field violations), why (the ErrorInfo's reason) and when
to come back (the RetryInfo's delay) instead of repeating the transport's words.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from quoteflow_cli.exit_codes import ExitCode, for_status

_DETAILS_KEY = "grpc-status-details-bin"

_CANNOT_REACH = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class CliError(Exception):
    """A problem the command reports as one line (or one JSON object) and an exit code."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"code": "INTERNAL", "message": str(self), "exit_code": int(self.exit_code)}


class UsageError(CliError):
    """The command line or an input file is wrong; nothing was sent."""

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.USAGE

    def to_json(self) -> dict[str, Any]:
        return {"code": "USAGE", "message": str(self), "exit_code": int(self.exit_code)}


class UnexpectedError(CliError):
    """A bug: still one line, with the traceback for whoever asks for it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(
            f"unexpected error: {type(error).__name__}: {error} "
            "(QUOTEFLOW_DEBUG=1 shows the traceback)"
        )


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class CallError(CliError):
    """A call to one of the services failed, with what its status details say."""

    def __init__(
        self,
        *,
        service: str,
        address: str,
        code: grpc.StatusCode,
        message: str,
        deadline: float | None = None,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
        retry_delay: float | None = None,
    ) -> None:
        self.service = service
        self.address = address
        self.code = code
        #: The service's own message, or the transport's when the service never answered.
        self.message = message
        self.deadline = deadline
        #: ErrorInfo.reason, e.g. "QUEUE_FULL"; empty when the status had no ErrorInfo.
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.violations = list(violations)
        #: RetryInfo.retry_delay in seconds: how long the service asks us to wait.
        self.retry_delay = retry_delay
        super().__init__(self.line())

    @classmethod
    def from_grpc_error(
        cls, error: grpc.aio.AioRpcError, *, service: str, address: str, deadline: float | None
    ) -> "CallError":
        code = error.code()
        fields: dict[str, Any] = {}
        # grpc.aio's metadata yields (key, value) pairs, whatever grpc-stubs says.
        metadata: Iterable[tuple[str, str | bytes]] = error.trailing_metadata()  # type: ignore[assignment]
        status = _status_details(metadata, code)
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        retry = error_details_pb2.RetryInfo()
        # Unpack answers False, touching nothing, for a detail of another type.
        for packed in status.details if status is not None else ():
            if packed.Unpack(info):
                fields.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
            elif packed.Unpack(bad_request):
                fields["violations"] = [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
            elif packed.Unpack(retry):
                fields["retry_delay"] = retry.retry_delay.ToNanoseconds() / 1e9
        return cls(
            service=service,
            address=address,
            code=code,
            message=_one_line(error.details() or ""),
            deadline=deadline,
            **fields,
        )

    @property
    def exit_code(self) -> ExitCode:
        return for_status(self.code)

    @property
    def unreachable(self) -> bool:
        """Whether the service (not our request) is the problem: no answer at all."""
        return self.code in _CANNOT_REACH

    @property
    def why(self) -> str:
        """A short name for the cause, for counting failures: the reason, else the code."""
        return self.reason or self.code.name

    def line(self) -> str:
        where = f"the {self.service} service at {self.address}"
        # A status without ErrorInfo was made by the transport: the service never answered.
        if self.code == grpc.StatusCode.DEADLINE_EXCEEDED and not self.reason:
            within = f" within {self.deadline:g} s" if self.deadline is not None else ""
            return f"no answer from {where}{within} (DEADLINE_EXCEEDED); --timeout gives it longer"
        if self.code == grpc.StatusCode.UNAVAILABLE and not self.reason:
            return f"cannot reach {where} (UNAVAILABLE): {self.message}"
        if self.code == grpc.StatusCode.INVALID_ARGUMENT and self.violations:
            listed = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
            return f"invalid request: {listed}"
        if self.code == grpc.StatusCode.UNAUTHENTICATED:
            return self._unauthenticated_line(where)
        if self.code == grpc.StatusCode.PERMISSION_DENIED:
            because = f"PERMISSION_DENIED, {self.reason}" if self.reason else "PERMISSION_DENIED"
            text = f"{where} denied the call ({because}): {self.message}"
            return f"{text} (the token has none)" if self.reason == "ROLE_REQUIRED" else text
        because = f"{self.code.name} ({self.reason})" if self.reason else self.code.name
        text = f"{where} answered {because}: {self.message}"
        if self.retry_delay is not None:
            text += f"; it asks to retry after {self.retry_delay:g} s"
        return text

    def _unauthenticated_line(self, where: str) -> str:
        because = f"UNAUTHENTICATED, {self.reason}" if self.reason else "UNAUTHENTICATED"
        if self.reason == "TOKEN_MISSING":
            return f"{where} needs a token ({because}): give one with --token or $QUOTEFLOW_TOKEN"
        return f"{where} did not accept the token ({because}): {self.message}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "address": self.address,
            "code": self.code.name,
            "message": self.line(),
            "detail": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.reason:
            data.update(reason=self.reason, domain=self.domain, metadata=self.metadata)
        if self.violations:
            data["field_violations"] = [
                {"field": v.field, "description": v.description} for v in self.violations
            ]
        if self.retry_delay is not None:
            data["retry_delay_seconds"] = self.retry_delay
        return data


def _status_details(
    metadata: Iterable[tuple[str, str | bytes]] | None, code: grpc.StatusCode
) -> status_pb2.Status | None:
    for key, value in metadata or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        # As api-core does: details that contradict the call's own code describe
        # some other failure (e.g. a proxy's), so they are not trusted.
        return status if status.code == code.value[0] else None
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
