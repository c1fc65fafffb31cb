"""Percentiles and medians over plain lists of numbers."""

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (fraction 0.99 → p99); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def ms(microseconds: float | None) -> float | None:
    return None if microseconds is None else microseconds / 1000.0
