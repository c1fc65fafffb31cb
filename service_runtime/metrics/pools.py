"""The gauges of the requestor's task pool and of the processor's order logs,
set from each service's stats at every scrape. The services pass plain
numbers, so this package depends on none of them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class TaskPoolMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"quoteflow_tasks_{name}", doc, registry=registry)

        self.active = gauge("active", "Order tasks running, each holding a slot.")
        self.queued = gauge("queued", "Order tasks waiting for a slot, waiting ones included.")
        self.waiting = gauge(
            "waiting", "Of the queued, those waiting for their order's first event."
        )
        self.kept = gauge("kept", "Tasks in a final status that are still kept.")
        self.max_concurrent = gauge("max_concurrent", "The most order tasks that run at once.")


class OrderLogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"quoteflow_{name}", doc, registry=registry)

        self.orders = gauge("orders", "Orders with an event log.")
        self.events = gauge("order_events", "Events held by every order's log together.")
        self.watchers = gauge("order_watchers", "WatchOrder streams open on this process.")
        self.awaited = gauge("order_awaited", "Orders with no event yet that someone watches.")
        self.in_flight = gauge("proposals_in_flight", "Proposals accepted and not yet priced.")
