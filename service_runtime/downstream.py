"""Calling another quoteflow service: a deadline on every call, errors that name
the downstream, and readiness that follows the downstream's health."""

import asyncio
import collections
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service_runtime.channels import PLAINTEXT, ClientSecurity, open_channel
from service_runtime.errors import DETAILS_METADATA_KEY, DownstreamError, ForwardedError
from service_runtime.metrics.rpc import RpcMetrics
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("service_runtime.downstream")

T = TypeVar("T")

# Answers about the caller's own request: passed on as they are. Any other
# failure is the downstream's, and becomes UNAVAILABLE or DEADLINE_EXCEEDED
# naming it.
_CALLERS_FAULT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


# gRPC waits 1 s after a failed connect, growing to 120 s, before it tries
# again, failing calls at once meanwhile: a downstream that came back would go
# unnoticed for minutes. Capped here, it is noticed within two seconds.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class ReadinessTarget(Protocol):
    """What readiness is set on: a RunningServer, or one condition of a
    store_readiness.Readiness."""

    async def set_ready(self, ready: bool) -> None: ...


class Downstream:
    """One service this one calls, at one address, over one channel."""

    def __init__(
        self,
        name: str,
        address: str,
        *,
        health_name: str,
        deadline: float,
        security: ClientSecurity = PLAINTEXT,
        metrics: RpcMetrics | None = None,
    ) -> None:
        #: How errors and logs name it, e.g. "quote service at 127.0.0.1:50051".
        self.label = f"{name} at {address}"
        #: Seconds a unary call may take.
        self.deadline = deadline
        self.channel = open_channel(
            address, security=security, options=_CHANNEL_OPTIONS, metrics=metrics
        )
        self._health_name = health_name
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def translate(self, error: grpc.aio.AioRpcError) -> Exception:
        """The exception to raise for a failed call to this downstream."""
        code = error.code()
        if code in _CALLERS_FAULT:
            # assignment: grpc-stubs types it as the synchronous API's tuple of
            # _Metadatum; grpc.aio answers its Metadata of (key, value) pairs, or None.
            trailing: grpc.aio.Metadata | None = error.trailing_metadata()  # type: ignore[assignment]
            details = [(k, v) for k, v in trailing or () if k == DETAILS_METADATA_KEY]
            return ForwardedError(self.label, _Status(code, error.details() or "", tuple(details)))
        return DownstreamError(self.label, code, error.details() or code.name)

    async def call(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """A unary call with this downstream's deadline; failures translated."""
        try:
            return await method(request, timeout=self.deadline)
        except grpc.aio.AioRpcError as error:
            raise self.translate(error) from error

    async def stream(
        self,
        method: Callable[..., grpc.aio.UnaryStreamCall[Any, T]],
        request: Any,
        *,
        max_seconds: float,
    ) -> AsyncGenerator[T, None]:
        """A server-streaming call cut after max_seconds; failures translated."""
        call = method(request, timeout=max_seconds)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise self.translate(error) from error
        finally:
            call.cancel()

    async def is_ready(self) -> bool:
        """Whether the downstream's health says its service is SERVING."""
        request = health_pb2.HealthCheckRequest(service=self._health_name)
        try:
            answer = await self._health.Check(request, timeout=self.deadline)
        except grpc.aio.AioRpcError:
            return False
        # grpc_health's messages are untyped to mypy: its stubs cover health.py only.
        serving: bool = answer.status == health_pb2.HealthCheckResponse.SERVING
        return serving

    async def track_readiness(self, server: ReadinessTarget, *, interval: float) -> None:
        """Keep server's readiness equal to this downstream's, checking every interval
        seconds, until cancelled. Liveness is left alone: a process whose downstream
        is away is still alive."""
        ready: bool | None = None
        while True:
            now_ready = await self.is_ready()
            if now_ready != ready:
                ready = now_ready
                await server.set_ready(ready)
                logger.log(
                    logging.INFO if ready else logging.WARNING,
                    "downstream ready" if ready else "downstream unavailable",
                    extra={FIELDS_ATTRIBUTE: {"downstream": self.label}},
                )
            await asyncio.sleep(interval)

    async def close(self) -> None:
        # No grace: a call still open is cancelled at once.
        await self.channel.close(grace=None)


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """grpc.Status is an interface; this is the plain value grpc_status uses too."""
