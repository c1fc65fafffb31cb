"""OpenTelemetry traces of every process: a server span per RPC, a client span
per call to another service, W3C traceparent carried in gRPC metadata, and
OTLP export turned on by the standard variables.

Off by default, at the cost of one check per call: configure_tracing installs
the SDK only when OTEL_EXPORTER_OTLP_ENDPOINT (or its traces-only form) is set;
OTEL_SERVICE_NAME names the process (else quoteflow-<service>) and the SDK's
own OTEL_* variables (sampler, batch delays) apply."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from queues.core.traces import tracing_on
from service_runtime.metrics.rpc import go_code, split_method

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("quoteflow.rpc")
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# OpenTelemetry's gRPC conventions: on the server, the codes that are the
# server's failure; the others are the caller's (and its span's) to judge.
_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
#: Health checks every few seconds would each be a trace of their own.
UNTRACED_PREFIX = "/grpc.health.v1.Health/"
#: The metadata keys the W3C propagator reads and writes.
TRACE_KEYS = ("traceparent", "tracestate")


def configure_tracing(default_service_name: str) -> bool:
    """Install the SDK exporting over OTLP/gRPC if an endpoint is set; answers
    whether it did. The exporter is imported only then."""
    if not any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        return False
    # The SDK and the exporter load only when asked for: zero cost otherwise.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def shutdown_tracing() -> None:
    """Export what is still buffered, at the process's end."""
    provider: Any = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()


def _attributes(method: str) -> dict[str, str]:
    service, name = split_method(method)
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


#: A server span begun, and the context token that made it current (if it is).
ServerSpan = tuple[Span, object | None]


def start_rpc_span(
    method: str, metadata: Sequence[tuple[str, Any]], *, current: bool
) -> ServerSpan | None:
    """The server span of a call to method, a child of the caller's trace (its
    traceparent in metadata), made current here if current: a stream's body
    runs across yields, where a current span would leak into whatever pulls
    it. None when tracing is off. Ended by end_rpc_span, in the same task."""
    if not tracing_on() or method.startswith(UNTRACED_PREFIX):
        return None
    carrier = {k: v for k, v in metadata if k in TRACE_KEYS}
    parent = _PROPAGATOR.extract(carrier) if carrier else context.Context()
    span = _TRACER.start_span(
        method.lstrip("/"), context=parent, kind=SpanKind.SERVER, attributes=_attributes(method)
    )
    token = context.attach(trace.set_span_in_context(span)) if current else None
    return span, token


def end_rpc_span(started: ServerSpan | None, code: str, details: str = "") -> None:
    """End the span with the call's final code (its Python name)."""
    if started is None:
        return
    span, token = started
    if token is not None:
        # attach's token is typed as a contextvars.Token.
        context.detach(token)  # type: ignore[arg-type]
    _end(span, code, details, errors=_SERVER_ERRORS)
    span.end()


def _end(span: Span, code: str, details: str, *, errors: frozenset[str] | None) -> None:
    """Set the span's code and status: ERROR for the codes in errors (None:
    every code but OK), OK otherwise, so every span says how it went."""
    span.set_attribute("rpc.grpc.status_code", getattr(grpc.StatusCode, code).value[0])
    failed = code != "OK" if errors is None else code in errors
    span.set_status(
        Status(StatusCode.ERROR, f"{go_code(code)}: {details}") if failed else Status(StatusCode.OK)
    )


def start_client_span(method: str) -> tuple[Span, list[tuple[str, str]]] | None:
    """A client span for a call to method, and the metadata that carries its
    trace to the server; None when tracing is off. The caller ends it
    (end_client_span)."""
    if not tracing_on() or method.startswith(UNTRACED_PREFIX):
        return None
    span = _TRACER.start_span(
        method.lstrip("/"), kind=SpanKind.CLIENT, attributes=_attributes(method)
    )
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return span, list(carrier.items())


def end_client_span(
    span: Span, code: grpc.StatusCode, details: str = "", *, closed_by_caller: bool = False
) -> None:
    """End the span with the call's code; a stream the caller closed itself,
    having read what it wanted, went as the caller meant: OK."""
    if closed_by_caller:
        span.set_attribute("quoteflow.closed_by_caller", True)
        _end(span, "OK", details, errors=None)
    else:
        _end(span, code.name, details, errors=None)
    span.end()


def with_trace(
    details: grpc.aio.ClientCallDetails, carried: list[tuple[str, str]]
) -> grpc.aio.ClientCallDetails:
    """details with carried (traceparent, tracestate) in its metadata."""
    kept = [(k, v) for k, v in details.metadata or () if k not in TRACE_KEYS]
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=grpc.aio.Metadata(*kept, *carried),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )
