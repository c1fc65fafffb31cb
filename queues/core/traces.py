"""Traces across the queue, on the OpenTelemetry API alone (a no-op unless the
process installed the SDK): each job keeps the trace it was submitted in
(NewJob.trace, a W3C traceparent), and each attempt runs in a span of that
trace, so work that runs later, and maybe on another replica, joins the call
that queued it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context, trace
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("quoteflow.queues")


def tracing_on() -> bool:
    """Whether the process installed a TracerProvider: until it does, nothing
    here costs more than this check."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def current_trace() -> str:
    """The traceparent of the span current here; "" when none is."""
    if not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def attempt_span(queue: str, job_id: str, attempt: int, submitted_in: str) -> Iterator[Span | None]:
    """The span of one attempt, current while it runs, a child of the trace its
    job was submitted in; None (and no span) when tracing is off."""
    if not tracing_on():
        yield None
        return
    parent = _PROPAGATOR.extract({"traceparent": submitted_in}) if submitted_in else None
    with _TRACER.start_as_current_span(
        f"{queue} attempt",
        context=parent or context.Context(),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "quoteflow",
            "messaging.destination.name": queue,
            "messaging.message.id": job_id,
            "quoteflow.attempt": attempt,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def end_attempt(span: Span | None, outcome: str, error: str = "") -> None:
    """Record how the attempt ended on its span."""
    if span is None:
        return
    span.set_attribute("quoteflow.outcome", outcome)
    span.set_status(Status(StatusCode.ERROR, error) if error else Status(StatusCode.OK))
