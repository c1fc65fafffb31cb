"""Every figure name a run writes, whatever its sizes: what the smoke test checks."""

from bench.fig_console import CONSOLE_NAMES
from bench.fig_e2e import E2E_NAMES
from bench.fig_engine import ENGINE_NAMES
from bench.fig_fairness import FAIRNESS_NAMES
from bench.fig_levers import LEVER_NAMES
from bench.fig_memory import MEMORY_NAMES
from bench.fig_observability import OBSERVABILITY_NAMES
from bench.fig_pg_stats import PG_STATS_NAMES
from bench.fig_security import SECURITY_NAMES
from bench.fig_split import SPLIT_NAMES
from bench.fig_stalled import STALLED_NAMES
from bench.fig_streams import STREAM_NAMES
from bench.fig_unary import CONCURRENCIES, METHODS


def figure_names() -> list[str]:
    unary = [
        f"unary.{method}.c{concurrency}.{stat}"
        for method in METHODS
        for concurrency in CONCURRENCIES
        for stat in ("rps", "p50_ms", "p99_ms", "calls_per_cpu_s")
    ]
    durability = [
        f"durability.c{concurrency}.{stat}"
        for concurrency in CONCURRENCIES
        for stat in ("rps", "calls_per_cpu_s")
    ]
    return [
        *unary,
        *durability,
        *ENGINE_NAMES,
        *E2E_NAMES,
        *STREAM_NAMES,
        *MEMORY_NAMES,
        *PG_STATS_NAMES,
        *SPLIT_NAMES,
        *CONSOLE_NAMES,
        *SECURITY_NAMES,
        *STALLED_NAMES,
        *OBSERVABILITY_NAMES,
        *FAIRNESS_NAMES,
        *LEVER_NAMES,
    ]
