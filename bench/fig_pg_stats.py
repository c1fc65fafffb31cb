"""Figure 7: GetStats on store postgres with pending messages against none.

A quote service on a fresh database with `--workers 0` (it serves calls only,
so nothing drains): GetStats timed pg_stats_calls times one after another over
gRPC with the queue empty, then again once pg_stats_pending quotes are queued
(BatchSubmitQuotes of FILL_BATCH). The figure is the median latency per call,
against the empty queue's.
"""

from typing import Any

from bench import servers
from bench.context import Run
from bench.fig_engine import CONSTANT_TIME
from bench.pg_peer import fresh_database
from bench.quote_load import fill, stats_latencies
from bench.results import Figure
from bench.stats import median

PG_STATS_NAMES = ("postgres.get_stats_empty_us", "postgres.get_stats_loaded_us")
FILL_BATCH = 1000
FILL_CALLERS = 4


def _summary(answer: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(answer["latencies_us"])
    return {
        "median_us": median([float(x) for x in latencies]),
        "mean_us": sum(latencies) / len(latencies),
        "p90_us": latencies[int(len(latencies) * 0.9)],
        "pending": answer["pending"],
    }


async def _measure(run: Run) -> dict[str, Any]:
    sizes = run.sizes
    async with fresh_database("bench_quote", procrastinate=False) as database:
        if database.url is None:
            return {"skipped": database.found}
        args = ("--database-url", database.url, "--workers", "0")
        spec = servers.quote("stats-postgres", store="postgres", args=args)
        (service,) = await run.servers.start_all(spec)
        try:
            empty = _summary(await stats_latencies(run, service.address, sizes.pg_stats_calls))
            seconds = await fill(
                run,
                service.address,
                sizes.pg_stats_pending,
                batch=FILL_BATCH,
                concurrency=FILL_CALLERS,
                wait=False,
            )
            loaded = _summary(await stats_latencies(run, service.address, sizes.pg_stats_calls))
        finally:
            await run.servers.stop(service)
    if loaded["pending"] != sizes.pg_stats_pending:
        raise RuntimeError(f"{loaded['pending']} pending, not {sizes.pg_stats_pending}")
    return {"empty": empty, "loaded": loaded, "fill_seconds": round(seconds, 2)}


async def figure_pg_stats(run: Run) -> None:
    sizes = run.sizes
    run.say(f"figure 7: GetStats on PostgreSQL, {sizes.pg_stats_pending:,} pending against 0")
    got = await _measure(run)
    run.notes["pg_stats"] = got
    skipped = got.get("skipped")
    empty = None if skipped else got["empty"]["median_us"]
    loaded = None if skipped else got["loaded"]["median_us"]
    params = {"calls": sizes.pg_stats_calls, "workers": 0, "concurrency": 1}
    run.add(
        Figure(
            "postgres.get_stats_empty_us",
            empty,
            "µs/call",
            note=skipped or "GetStats over gRPC, median of calls one after another, 0 pending",
            params={**params, "pending": 0},
        ),
        Figure(
            "postgres.get_stats_loaded_us",
            loaded,
            "µs/call",
            empty,
            "the same call with nothing pending",
            CONSTANT_TIME,
            skipped or "store postgres, --workers 0 (nothing drains)",
            {**params, "pending": sizes.pg_stats_pending},
        ),
    )
