"""One process's metrics: its own registry (so in-process tests may run several
services side by side), the families it serves, and what refreshes its gauges
before a scrape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    ProcessCollector,
    disable_created_metrics,
)

from service_runtime.config import ListenerOptions
from service_runtime.metrics.pools import OrderLogMetrics, TaskPoolMetrics
from service_runtime.metrics.queue import QueueMetrics
from service_runtime.metrics.rpc import RpcMetrics
from service_runtime.metrics.store import StoreMetrics

# go-grpc-prometheus has no _created samples, and they double a scrape's size.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped

#: Sets gauges from the service's state, just before a scrape.
Refresh = Callable[[], Awaitable[None]]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.server = RpcMetrics(self.registry, "server")
        self.client = RpcMetrics(self.registry, "client")
        self.queues = QueueMetrics(self.registry)
        self.store = StoreMetrics(self.registry)
        self._ready = Gauge(
            "quoteflow_ready",
            "1 while the service answers its readiness check SERVING, else 0.",
            registry=self.registry,
        )
        self._tasks: TaskPoolMetrics | None = None
        self._orders: OrderLogMetrics | None = None
        self._refreshes: list[Refresh] = []

    # The pool's and the order logs' gauges exist only in the process that has
    # them: a quote service showing quoteflow_tasks_active 0 would mislead.
    @property
    def tasks(self) -> TaskPoolMetrics:
        if self._tasks is None:
            self._tasks = TaskPoolMetrics(self.registry)
        return self._tasks

    @property
    def orders(self) -> OrderLogMetrics:
        if self._orders is None:
            self._orders = OrderLogMetrics(self.registry)
        return self._orders

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def on_scrape(self, refresh: Refresh) -> None:
        self._refreshes.append(refresh)

    async def refresh(self) -> None:
        for refresh in self._refreshes:
            await refresh()


def metrics_for(options: ListenerOptions) -> ServiceMetrics | None:
    """The metrics of a process with options; None when metrics_port is 0 (off),
    so that nothing is counted."""
    return ServiceMetrics() if options.metrics_port else None
