"""Every sample name the services can expose: what a dashboard's or an alert's
query may name (checked in tests/deploy)."""

from __future__ import annotations

from service_runtime.metrics.service_metrics import ServiceMetrics

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def sample_names() -> frozenset[str]:
    metrics = ServiceMetrics()
    # Made on first use in the processes that have them: made here to be listed.
    _ = metrics.tasks, metrics.orders
    names = set()
    for family in metrics.registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return frozenset(names)
