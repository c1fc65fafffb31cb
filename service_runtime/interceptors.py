"""The server interceptor every service runs behind: who may call (access),
error translation, and one log line per RPC.

Servicer methods raise the library's errors; the interceptor answers them with
the status service_runtime.errors maps them to, so no servicer builds a status
by hand. Servicer methods must be coroutines or async generators.

A request body that does not parse as the method's message is answered
INVALID_ARGUMENT (reason MALFORMED_REQUEST) here, for every method, a streamed
request's messages included: gRPC's own answer would be UNKNOWN, naming a
Python class, after an ERROR traceback in the log, so a flood of garbage would
flood the log too.
"""

# grpc.RpcMethodHandler is generic to type checkers only, so annotations
# naming it parametrised must not be evaluated at run time.
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias, cast

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from service_runtime.access import Access, Admitted, CallRefused, audit
from service_runtime.drain import DrainGate
from service_runtime.errors import rich_status, status_for_exception
from service_runtime.metrics.rpc import MethodMetrics, RpcMetrics, grpc_type
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE
from service_runtime.tracing import end_rpc_span, start_rpc_span

logger = logging.getLogger("service_runtime.rpc")

_INTERNAL_MESSAGE = "internal error"
# How much earlier than the server's a client's deadline may expire: the time
# its request took to arrive, generously allowing for a loaded machine.
_DEADLINE_TRANSIT_SECONDS = 0.25
_SHUTTING_DOWN = rich_status(
    grpc.StatusCode.UNAVAILABLE,
    "the server is shutting down and takes no new calls; nothing was accepted",
    reason="SHUTTING_DOWN",
)
# Probes call these every few seconds; at INFO they would bury every other line.
_QUIET_METHODS = ("/grpc.health.v1.Health/",)

#: A servicer method as a grpc.aio server calls it: a coroutine function, or an
#: async generator function when its responses are streamed.
_Behaviour: TypeAlias = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Deserializer: TypeAlias = Callable[[bytes], Any]


@dataclass(frozen=True)
class _Undecodable:
    """What the deserializer answers in place of a request body that did not parse."""

    status: grpc.Status


class _MalformedRequest(Exception):
    """Raised where an _Undecodable reaches the servicer, to end the call with its status."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


# type-arg: grpc-stubs makes the class generic; grpc.aio's is not, so it takes no arguments.
class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Translates servicer errors to statuses, logs method, code and duration
    of every RPC, and counts it in metrics (when given)."""

    def __init__(
        self,
        gate: DrainGate,
        access: Access,
        *,
        max_request_bytes: int,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._gate = gate
        self._access = access
        self._max_request_bytes = max_request_bytes
        self._metrics = metrics
        # Handlers are wrapped once per method, not per call; the cached
        # original guards against a generic handler answering with a new one.
        self._wrapped: dict[str, tuple[_Handler, _Handler]] = {}

    # override: gRPC's continuation answers None for a method no servicer
    # serves, which is passed on; grpc-stubs leaves that None out.
    async def intercept_service(  # type: ignore[override]
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        observed = None
        if self._metrics is not None:
            kind = grpc_type(
                request_streaming=handler.request_streaming,
                response_streaming=handler.response_streaming,
            )
            observed = self._metrics.method(method, kind)
        wrapped = _wrap_handler(
            handler, method, self._gate, self._access, self._max_request_bytes, observed
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap_handler(
    handler: _Handler,
    method: str,
    gate: DrainGate,
    access: Access,
    max_request_bytes: int,
    observed: MethodMetrics | None,
) -> _Handler:
    """Rebuild handler around its behaviour, keeping its (de)serializers and streaming shape."""
    behaviour: Callable[..., Any] | None
    build: Callable[..., _Handler]
    if handler.request_streaming and handler.response_streaming:
        behaviour, build = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        behaviour, build = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behaviour, build = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behaviour, build = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    # gRPC sets the behaviour of the handler's own streaming shape.
    assert behaviour is not None
    # The stubs type behaviours for the synchronous server; on a grpc.aio server
    # each is a _Behaviour, whichever of the four shapes it serves.
    servicer_method = cast(_Behaviour, behaviour)
    # gRPC tells an async-generator stream from a context.write() one by its
    # function kind, so the wrapper must be of the same kind as the behaviour.
    wrap = _wrap_generator if inspect.isasyncgenfunction(servicer_method) else _wrap_coroutine
    deserializer = handler.request_deserializer
    if deserializer is not None:
        deserializer = _tolerant(deserializer, method, max_request_bytes)
    return build(
        wrap(servicer_method, method, gate, access, handler.request_streaming, observed),
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )


def _tolerant(deserializer: _Deserializer, method: str, max_bytes: int) -> _Deserializer:
    """deserializer, answering _Undecodable rather than raising for a body that
    does not parse or is over max_bytes, so the call ends as a refused
    request, not as a crash."""
    # Generated stubs pass the message class's FromString, bound to the class.
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else f"request of {method}"
    undecodable = _Undecodable(
        rich_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request body is not a valid {name}",
            reason="MALFORMED_REQUEST",
            metadata={"messageType": name},
        )
    )

    too_large = _Undecodable(
        rich_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the request is larger than the {max_bytes} bytes this server accepts; "
            "send less at once (a smaller batch, say)",
            reason="REQUEST_TOO_LARGE",
            metadata={"maxBytes": str(max_bytes)},
        )
    )

    def deserialize(body: bytes) -> Any:
        if len(body) > max_bytes:
            return too_large
        try:
            return deserializer(body)
        except DecodeError:
            return undecodable

    return deserialize


def _parsed(request: Any, streamed: bool, observed: MethodMetrics | None) -> Any:
    """What the servicer is handed: the request, refused if it did not parse;
    streamed, the requests, refused at the first message that did not."""
    if streamed:
        return _refusing_undecodable(request, observed)
    if observed is not None:
        observed.received.inc()
    if isinstance(request, _Undecodable):
        raise _MalformedRequest(request.status)
    return request


async def _refusing_undecodable(
    requests: AsyncIterator[Any], observed: MethodMetrics | None
) -> AsyncIterator[Any]:
    async for request in requests:
        if observed is not None:
            observed.received.inc()
        if isinstance(request, _Undecodable):
            raise _MalformedRequest(request.status)
        yield request


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    # Any: grpc-stubs types metadata as the synchronous API's _Metadatum tuple.
    return context.invocation_metadata() or ()


def _details(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    # grpc-stubs leaves details() out of grpc.aio.ServicerContext.
    details: Any = getattr(context, "details", lambda: "")()
    return details if isinstance(details, str) else ""


def _admitted(access: Access, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Admitted:
    return access.admit(method, _metadata(context), context.peer())


def _wrap_coroutine(
    behaviour: _Behaviour,
    method: str,
    gate: DrainGate,
    access: Access,
    streamed: bool,
    observed: MethodMetrics | None,
) -> _Behaviour:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        if observed is not None:
            observed.started.inc()
        cancelled = False
        admitted: Admitted | None = None
        span = start_rpc_span(method, _metadata(context), current=True)
        try:
            if not await gate.admits(method):
                await _abort(context, _SHUTTING_DOWN)
            admitted = _admitted(access, method, context)
            with gate.tracking():
                return await behaviour(_parsed(request, streamed, observed), context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as error:
            await _abort_for(error, context, method)
        finally:
            code = _log_rpc(method, context, started, cancelled, None)
            end_rpc_span(span, code, _details(context))
            if observed is not None:
                if code == "OK":
                    observed.sent.inc()
                observed.handled(code, time.perf_counter() - started)
            if admitted is not None:
                audit(admitted, request, code)

    return wrapped


def _wrap_generator(
    behaviour: _Behaviour,
    method: str,
    gate: DrainGate,
    access: Access,
    streamed: bool,
    observed: MethodMetrics | None,
) -> _Behaviour:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        started = time.perf_counter()
        streams = observed.streams if observed is not None else None
        if observed is not None:
            observed.started.inc()
        if streams is not None:
            streams.inc()
        cancelled = False
        sent = 0
        # Not current: the body runs across yields, in whatever context pulls it.
        span = start_rpc_span(method, _metadata(context), current=False)
        try:
            if not await gate.admits(method):
                await _abort(context, _SHUTTING_DOWN)
            admitted = _admitted(access, method, context)
            # aclosing: when the stream ends early, the servicer's generator is
            # closed now, running its cleanup, rather than whenever it is collected.
            parsed = _parsed(request, streamed, observed)
            with access.stream_slot(admitted):
                async with contextlib.aclosing(behaviour(parsed, context)) as responses:
                    async for response in responses:
                        yield response
                        sent += 1
                        if observed is not None:
                            observed.sent.inc()
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # GeneratorExit: gRPC stopped pulling responses, which it only does
            # when the call is gone.
            cancelled = True
            raise
        except Exception as error:
            await _abort_for(error, context, method)
        finally:
            code = _log_rpc(method, context, started, cancelled, sent)
            end_rpc_span(span, code, _details(context))
            if streams is not None:
                streams.dec()
            if observed is not None:
                observed.handled(code, time.perf_counter() - started)

    return wrapped


async def _abort_for(
    error: Exception, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> NoReturn:
    if isinstance(error, _MalformedRequest | CallRefused):
        await _abort(context, error.status)
    status = status_for_exception(error)
    if status is None:
        logger.exception(
            "unhandled error in %s", method, extra={FIELDS_ATTRIBUTE: {"method": method}}
        )
        # The exception's text may hold internals, so the caller gets a fixed message.
        status = rich_status(grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE, reason="INTERNAL")
    await _abort(context, status)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> NoReturn:
    # What grpc.aio's abort_with_status(status) does, called directly since
    # grpc-stubs leaves abort_with_status out of grpc.aio.ServicerContext.
    await context.abort(status.code, status.details, status.trailing_metadata)


def _log_rpc(
    method: str,
    context: grpc.aio.ServicerContext[Any, Any],
    started: float,
    cancelled: bool,
    sent: int | None,
) -> str:
    """Logs the call; answers its final code."""
    code = _final_code(context, cancelled)
    level = logging.DEBUG if method.startswith(_QUIET_METHODS) else logging.INFO
    if not logger.isEnabledFor(level):
        return code
    fields: dict[str, object] = {
        "method": method,
        "code": code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    if sent is not None:
        fields["messages_sent"] = sent
    logger.log(level, "rpc", extra={FIELDS_ATTRIBUTE: fields})
    return code


def _final_code(context: grpc.aio.ServicerContext[Any, Any], cancelled: bool) -> str:
    if cancelled:
        remaining = context.time_remaining()
        # A call cut by its own deadline is cancelled too; say which it was.
        # The server's deadline runs from when the request arrived, so the
        # client's fires first, and its cancel arrives with a little time left.
        if remaining is not None and remaining <= _DEADLINE_TRANSIT_SECONDS:
            return grpc.StatusCode.DEADLINE_EXCEEDED.name
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    return code.name if code is not None else grpc.StatusCode.OK.name
