"""Who may make a call, and how many streams a caller may hold open: the
checks the server interceptor makes before a servicer runs, and the audit
line after an operator's or reviewer's action.

With a TokenVerifier, every call but health and reflection needs a valid
bearer token whose roles the method's row in service_runtime.roles names.
Without one (auth off) every call is let through, and a caller is told apart
by its peer address, for the stream cap.
"""

import collections
import contextlib
import datetime
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from service_runtime import roles
from service_runtime.errors import rich_status
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE
from service_runtime.tokens import Caller, TokenRefused, TokenVerifier

audit_logger = logging.getLogger("quoteflow.audit")

#: How long a caller at its stream cap is told to wait before it tries again.
STREAM_CAP_RETRY_SECONDS = 5.0
#: The request fields an audit line names the target by, the first one present.
_TARGET_FIELDS = ("id", "task_id", "order_req_id")


class CallRefused(Exception):
    """The call may not go on; status says why."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


@dataclass(frozen=True)
class Admitted:
    """A call let through: who made it (None when auth is off)."""

    method: str
    caller: Caller | None
    #: Who the stream cap counts it against: the token's sub, or the peer.
    caller_key: str


def _unauthenticated(reason: str, message: str) -> CallRefused:
    return CallRefused(rich_status(grpc.StatusCode.UNAUTHENTICATED, message, reason=reason))


def bearer_token(metadata: Sequence[tuple[str, Any]]) -> str:
    """The token of the call's `authorization: Bearer <token>`; CallRefused
    when it is missing or not of that form."""
    values = [v for k, v in metadata if k == "authorization"]
    if not values:
        raise _unauthenticated(
            "TOKEN_MISSING", "this call needs a token: send authorization: Bearer <token>"
        )
    scheme, _, token = str(values[0]).partition(" ")
    if len(values) > 1 or scheme.lower() != "bearer" or not token.strip():
        raise _unauthenticated(
            "TOKEN_MALFORMED", "send exactly one authorization: Bearer <token> header"
        )
    return token.strip()


class Access:
    """The interceptor's checks: authentication, the role table, the stream cap."""

    def __init__(self, verifier: TokenVerifier | None, *, max_streams_per_caller: int) -> None:
        self._verifier = verifier
        self._max_streams = max_streams_per_caller
        self._open_streams: collections.Counter[str] = collections.Counter()

    def admit(self, method: str, metadata: Sequence[tuple[str, Any]], peer: str) -> Admitted:
        """Who is calling, if they may; CallRefused otherwise."""
        if self._verifier is None or roles.is_open(method):
            return Admitted(method, None, peer)
        try:
            caller = self._verifier.verify(bearer_token(metadata))
        except TokenRefused as refused:
            raise _unauthenticated(refused.reason, str(refused)) from refused
        allowed = roles.allowed_roles(method)
        if not caller.roles & allowed:
            needed = ", ".join(sorted(allowed)) or "none: this method is not in the role table"
            raise CallRefused(
                rich_status(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method.rpartition('/')[2]} needs one of the roles: {needed}",
                    reason="ROLE_REQUIRED",
                    metadata={"roles": ",".join(sorted(allowed))},
                )
            )
        return Admitted(method, caller, caller.subject)

    @contextlib.contextmanager
    def stream_slot(self, admitted: Admitted) -> Iterator[None]:
        """One of the caller's open streams for the stream's life; CallRefused
        with a RetryInfo when the caller already holds the cap."""
        if roles.is_open(admitted.method) or (
            admitted.caller is not None and roles.SERVICE in admitted.caller.roles
        ):
            # The services bound their own streams (the processor's pricing_concurrency).
            yield
            return
        key = admitted.caller_key
        if self._open_streams[key] >= self._max_streams:
            raise CallRefused(
                rich_status(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this caller already holds {self._max_streams} open streams, the most "
                    "one caller may; close one, or try again later",
                    reason="STREAM_LIMIT",
                    metadata={"maxStreams": str(self._max_streams)},
                    retry_after=STREAM_CAP_RETRY_SECONDS,
                )
            )
        self._open_streams[key] += 1
        try:
            yield
        finally:
            self._open_streams[key] -= 1
            if not self._open_streams[key]:
                del self._open_streams[key]

    def open_streams(self, caller_key: str) -> int:
        return self._open_streams[caller_key]


def audit(admitted: Admitted, request: Any, code: str) -> None:
    """The audit line of an operator's or reviewer's action: who, what, which
    id, when, and how it ended."""
    if admitted.method not in roles.AUDITED_METHODS:
        return
    target = next((getattr(request, f) for f in _TARGET_FIELDS if getattr(request, f, "")), "")
    audit_logger.info(
        "audit",
        extra={
            FIELDS_ATTRIBUTE: {
                "subject": admitted.caller.subject if admitted.caller else "",
                "peer": admitted.caller_key if admitted.caller is None else "",
                "action": admitted.method.rpartition("/")[2],
                "target": target,
                "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "code": code,
            }
        },
    )
