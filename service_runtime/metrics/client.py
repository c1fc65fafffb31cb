"""The grpc_client_* metrics of a channel: client interceptors that count each
call to another service as go-grpc-prometheus's client interceptors do."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from service_runtime.metrics.rpc import GrpcType, MethodMetrics, RpcMetrics


class _Counting:
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def _start(
        self, kind: GrpcType, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> tuple[MethodMetrics, float, Any]:
        """The call started and its request sent: its metrics, start time and call."""
        method = self._metrics.method(_name(details), kind)
        method.started.inc()
        started = time.perf_counter()
        call = await continuation(details, request)
        method.sent.inc()
        return method, started, call


# One class per kind of call: grpc.aio files an interceptor under the first
# kind it is an instance of.
class UnaryCounting(_Counting, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method, started, call = await self._start(
            "unary", continuation, client_call_details, request
        )
        try:
            # The call keeps its answer: the caller's await gets it again.
            await call
        except grpc.aio.AioRpcError as error:
            method.handled(error.code(), time.perf_counter() - started)
        except BaseException:
            method.handled(grpc.StatusCode.CANCELLED, time.perf_counter() - started)
            raise
        else:
            method.received.inc()
            method.handled(grpc.StatusCode.OK, time.perf_counter() - started)
        return call


class StreamCounting(_Counting, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        method, started, call = await self._start(
            "server_stream", continuation, client_call_details, request
        )
        return _counted(call, method, started)


async def _counted(call: Any, method: MethodMetrics, started: float) -> AsyncIterator[Any]:
    code = grpc.StatusCode.OK
    try:
        async for response in call:
            method.received.inc()
            yield response
    except grpc.aio.AioRpcError as error:
        code = error.code()
        raise
    except BaseException:
        # The caller stopped reading (cancelled, or closed the stream).
        code = grpc.StatusCode.CANCELLED
        raise
    finally:
        method.handled(code, time.perf_counter() - started)


def _name(details: grpc.aio.ClientCallDetails) -> str:
    # grpc-stubs says str; grpc.aio passes the method as bytes.
    method: Any = details.method
    return method.decode() if isinstance(method, bytes) else str(method)
