"""The store's group commits: how long each took and how many writes it carried."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from queues.storage import CommitObserver

COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
# Batches run from 1 (a lone write) to a full BatchSubmitQuotes.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._seconds = Histogram(
            "quoteflow_store_commit_seconds",
            "How long each group commit of the store took.",
            ("store",),
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self._size = Histogram(
            "quoteflow_store_commit_batch_size",
            "Writes carried by each group commit of the store.",
            ("store",),
            buckets=BATCH_BUCKETS,
            registry=registry,
        )

    def observer(self, store: str) -> CommitObserver:
        """What a store of kind store (sqlite, postgres) reports its commits to."""
        seconds = self._seconds.labels(store)
        size = self._size.labels(store)

        def observe(took: float, writes: int) -> None:
            seconds.observe(took)
            size.observe(writes)

        return observe
