"""One order is one trace across the three services: the demo (the client)
roots it, and the services, as real processes exporting over OTLP to a
collector stand-in, add their server, client and attempt spans to it, each
child of the span that caused it, each with a status."""

import asyncio
from collections import Counter

from opentelemetry.proto.trace.v1 import trace_pb2
from support.service_stack import run_demo, three_services

from tools.otlp_collector import Collector, ReceivedSpan, start_collector

PROCESSOR = "quoteflow.processor.v1.ProcessorService"
REQUESTOR = "quoteflow.requestor.v1.RequestorService"
QUOTE = "quoteflow.quote.v1.QuoteService"
# Spans are exported in batches; a short delay, so the test waits little.
EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "50"}


async def spans_until(collector: Collector, enough, within: float = 30.0) -> list[ReceivedSpan]:
    async with asyncio.timeout(within):
        while not enough(collector.spans):
            await collector.changed()
    return list(collector.spans)


def whole(spans: list[ReceivedSpan]) -> bool:
    """The order's spans have all come: the last calls' and every parent."""
    names = Counter((s.service, s.span.name) for s in spans)
    ids = {s.span_id for s in spans}
    return (
        names["quoteflow-quote", "quotes attempt"] >= 3
        and names["quoteflow-requestor", f"{REQUESTOR}/GetTaskResult"] >= 1
        and any(s.span.name.startswith("order ORD-") for s in spans)
        and all(not s.parent_id or s.parent_id in ids for s in spans)
    )


async def test_an_order_is_one_trace_from_place_order_to_its_result(tmp_path):
    collector, server, endpoint = await start_collector()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **EXPORT}
    try:
        async with three_services(tmp_path, **env) as (_, processor, requestor):
            await run_demo(processor, requestor, **env)
            spans = await spans_until(collector, whole)
    finally:
        await server.stop(None)

    (root,) = [s for s in spans if s.span.name.startswith("order ORD-")]
    assert (root.service, root.parent_id) == ("quoteflow-demo", "")
    ours = [s for s in spans if s.trace_id == root.trace_id]
    # Every span the services sent is of the order's one trace.
    assert [(s.service, s.span.name) for s in spans if s.trace_id != root.trace_id] == []
    by_id = {s.span_id: s for s in ours}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        return by_id[span.parent_id]

    def named(service: str, name: str) -> list[ReceivedSpan]:
        return [s for s in ours if s.service == service and s.span.name == name]

    # The demo's calls: client spans under its root, each the parent of the
    # service's server span.
    for service, method, count in (
        ("quoteflow-requestor", f"{REQUESTOR}/PlaceOrder", 1),
        ("quoteflow-processor", f"{PROCESSOR}/SubmitProposal", 3),
        ("quoteflow-processor", f"{PROCESSOR}/CompleteOrder", 1),
    ):
        served = named(service, method)
        assert len(served) == count, method
        for span in served:
            assert span.span.kind == trace_pb2.Span.SPAN_KIND_SERVER
            client = parent(span)
            assert (client.service, client.span.kind) == (
                "quoteflow-demo",
                trace_pb2.Span.SPAN_KIND_CLIENT,
            )
            assert parent(client) is root or parent(client).span_id == root.span_id

    # Pricing: each quote's attempt runs under the quote service's SubmitQuote,
    # called by the processor (while accepting the proposal, or in its
    # pricing attempt) under the demo's SubmitProposal.
    quote_attempts = named("quoteflow-quote", "quotes attempt")
    assert len(quote_attempts) == 3
    for attempt in quote_attempts:
        assert attempt.span.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
        submitted = parent(attempt)
        assert (submitted.service, submitted.span.kind) == (
            "quoteflow-quote",
            trace_pb2.Span.SPAN_KIND_SERVER,
        )
        assert submitted.span.name.startswith(f"{QUOTE}/")
        call = parent(submitted)
        assert (call.service, call.span.kind) == (
            "quoteflow-processor",
            trace_pb2.Span.SPAN_KIND_CLIENT,
        )
        caller = parent(call)
        while caller.span.kind == trace_pb2.Span.SPAN_KIND_CONSUMER:
            caller = parent(caller)
        assert caller.span.name == f"{PROCESSOR}/SubmitProposal"
    pricing = named("quoteflow-processor", "proposal-pricing attempt")
    assert len(pricing) == 3
    assert {parent(p).span.name for p in pricing} == {f"{PROCESSOR}/SubmitProposal"}

    # Following the order: the requestor's attempt watches the processor.
    watches = named("quoteflow-processor", f"{PROCESSOR}/WatchOrder")
    assert watches
    for watch in watches:
        follower = parent(watch)
        assert (follower.service, follower.span.kind) == (
            "quoteflow-requestor",
            trace_pb2.Span.SPAN_KIND_CLIENT,
        )
        attempt = parent(follower)
        assert attempt.span.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
        # Back up the chain of attempts to the PlaceOrder that queued the task.
        while attempt.span.kind == trace_pb2.Span.SPAN_KIND_CONSUMER:
            attempt = parent(attempt)
        assert attempt.span.name == f"{REQUESTOR}/PlaceOrder"
    assert named("quoteflow-requestor", f"{REQUESTOR}/GetTaskResult")

    # Health checks are not traced.
    assert not [s for s in spans if "grpc.health" in s.span.name]
    # A status on every span: OK, or ERROR with its reason.
    unset = [(s.service, s.span.name) for s in ours if s is not root and s.span.status.code == 0]
    assert unset == []
