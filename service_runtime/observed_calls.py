"""Client interceptors that observe each call to another service: counted in
the grpc_client_* metrics (as go-grpc-prometheus's client interceptors count
them), and traced in a client span whose traceparent goes with the call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from opentelemetry.trace import Span

from service_runtime.metrics.rpc import GrpcType, MethodMetrics, RpcMetrics
from service_runtime.tracing import end_client_span, start_client_span, with_trace


class _Observed:
    """One call's metrics and span, whichever of them are on."""

    def __init__(self, method: MethodMetrics | None, span: Span | None) -> None:
        self._method = method
        self._span = span
        self._started = time.perf_counter()
        self._ended = False
        if method is not None:
            method.started.inc()

    def sent(self) -> None:
        if self._method is not None:
            self._method.sent.inc()

    def received(self) -> None:
        if self._method is not None:
            self._method.received.inc()

    def ended(
        self, code: grpc.StatusCode, details: str = "", *, closed_by_caller: bool = False
    ) -> None:
        """The call ended with code: told once, however many ways it is heard."""
        if self._ended:
            return
        self._ended = True
        if self._method is not None:
            self._method.handled(code, time.perf_counter() - self._started)
        if self._span is not None:
            end_client_span(self._span, code, details, closed_by_caller=closed_by_caller)


class _Observing:
    def __init__(self, metrics: RpcMetrics | None) -> None:
        self._metrics = metrics

    async def _start(
        self, kind: GrpcType, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> tuple[_Observed, Any]:
        """The call started and its request sent, observed."""
        name = _name(details)
        method = self._metrics.method(name, kind) if self._metrics is not None else None
        traced = start_client_span(name)
        if traced is not None:
            details = with_trace(details, traced[1])
        observed = _Observed(method, traced[0] if traced is not None else None)
        call = await continuation(details, request)
        observed.sent()
        return observed, call


# One class per kind of call: grpc.aio files an interceptor under the first
# kind it is an instance of.
class UnaryObserving(_Observing, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        observed, call = await self._start("unary", continuation, client_call_details, request)
        try:
            # The call keeps its answer: the caller's await gets it again.
            await call
        except grpc.aio.AioRpcError as error:
            observed.ended(error.code(), error.details() or "")
        except BaseException:
            observed.ended(grpc.StatusCode.CANCELLED)
            raise
        else:
            observed.received()
            observed.ended(grpc.StatusCode.OK)
        return call


class StreamObserving(_Observing, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        observed, call = await self._start(
            "server_stream", continuation, client_call_details, request
        )
        # The call's end is heard from the call itself: a caller that stops
        # reading (and cancels it) never resumes the responses below.
        call.add_done_callback(lambda done: _ended_later(done, observed))
        return _responses(call, observed)


async def _responses(call: Any, observed: _Observed) -> AsyncIterator[Any]:
    async for response in call:
        observed.received()
        yield response


def _ended_later(call: Any, observed: _Observed) -> None:
    # Its code is read by awaiting; the callback itself may not await.
    ending = asyncio.ensure_future(_ended(call, observed))
    _ENDING.add(ending)
    ending.add_done_callback(_ENDING.discard)


async def _ended(call: Any, observed: _Observed) -> None:
    if call.cancelled():
        observed.ended(grpc.StatusCode.CANCELLED, closed_by_caller=True)
        return
    observed.ended(await call.code(), await call.details() or "")


#: The tasks reading calls' ends, held so that they are not collected mid-way.
_ENDING: set[asyncio.Task[None]] = set()


def _name(details: grpc.aio.ClientCallDetails) -> str:
    # grpc-stubs says str; grpc.aio passes the method as bytes.
    method: Any = details.method
    return method.decode() if isinstance(method, bytes) else str(method)
