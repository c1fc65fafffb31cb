"""Figure 8: SubmitQuote with its workers in another process, against the no-op.

The quote service on a fresh PostgreSQL database runs as two processes: one
serves calls and prices nothing (`--workers 0`), the other opens no port and
prices (`--api false`). SubmitQuote on the first is measured against the no-op
QuoteService in the same interleaved rounds, at each of SPLIT_CONCURRENCIES;
before each run the worker drains the last one's backlog (bench.unary.settle).
Server CPU is charged for both quote processes. One more run at the highest
concurrency is metered per part (the load generator, the API process, the
worker process, the database's backends; the no-op's run likewise), which is
where the CPU of a call goes: the figure's evidence where it misses.
"""

import asyncio

from bench import servers
from bench.context import Run
from bench.cpu_meter import Backends, CpuMeter
from bench.fig_unary import unary_figures
from bench.pg_peer import fresh_database
from bench.results import Figure
from bench.unary import UnaryResult, compare, run_unary, settle
from tools.launcher import Launched

SPLIT_CONCURRENCIES = (16, 64)
#: The worker process's workers: enough that it drains faster than the API fills.
WORKER_COUNT = 8
#: How long the worker process may take to log "working".
WORKING_DEADLINE = 30.0
SPLIT_NAMES = tuple(
    f"split.SubmitQuote.c{c}.{stat}"
    for c in SPLIT_CONCURRENCIES
    for stat in ("rps", "p50_ms", "p99_ms", "calls_per_cpu_s")
)
#: What a figure holds when there is no PostgreSQL to measure on.
_UNMEASURED = UnaryResult(None, None, None, None, 0, 0)


async def _working(worker: Launched) -> None:
    """Wait until the worker process, whose stderr is a file, logs "working"."""
    assert worker.log_file is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WORKING_DEADLINE
    while '"msg": "working"' not in worker.log_file.read_text(errors="replace"):
        if worker.process.returncode is not None or loop.time() > deadline:
            raise RuntimeError(f"the quote worker process did not start:\n{worker.tail()}")
        await asyncio.sleep(0.05)


def split_figures(
    concurrency: int, split: UnaryResult, noop: UnaryResult, note: str = ""
) -> list[Figure]:
    return unary_figures(
        "SubmitQuote", concurrency, split, noop, "postgres", section="split", note=note
    )


async def cpu_per_call(
    run: Run, parts: dict[str, Launched], backends: Backends | None
) -> dict[str, float]:
    """One run of SubmitQuote at the highest concurrency on parts' first
    process, metered: µs of CPU per answered call, per part."""
    first = next(iter(parts.values()))
    await settle(first.address)
    pids = {name: child.pid for name, child in parts.items()}
    meter = CpuMeter({"loadgen": run.loadgens[0].pid, **pids}, backends=backends)
    await meter.start()
    measured = await run_unary(run, list(parts.values()), "SubmitQuote", SPLIT_CONCURRENCIES[-1])
    await settle(first.address)
    used = await meter.stop()
    calls = len(measured.latencies) or 1
    return {part: round(seconds / calls * 1e6, 1) for part, seconds in used.items()}


async def figure_split(run: Run) -> None:
    run.say("figure 8: SubmitQuote with its workers in another process (PostgreSQL)")
    async with fresh_database("bench_quote", procrastinate=False) as database:
        if database.url is None:
            for concurrency in SPLIT_CONCURRENCIES:
                run.add(*split_figures(concurrency, _UNMEASURED, _UNMEASURED, database.found))
            return
        store = ("--database-url", database.url)
        api_spec = servers.quote("split-api", store="postgres", args=(*store, "--workers", "0"))
        noop, api = await run.servers.start_all(servers.noop(), api_spec)
        worker_spec = servers.quote(
            "split-worker",
            store="postgres",
            args=(*store, "--api", "false", "--workers", str(WORKER_COUNT)),
            # It serves no calls, so INFO adds no per-call line; it says "working".
            log_level="INFO",
        )
        worker = await run.servers.start_worker(worker_spec)
        try:
            await _working(worker)
            for concurrency in SPLIT_CONCURRENCIES:
                run.say(f"figure 8: SubmitQuote at concurrency {concurrency}")
                results = await compare(
                    run,
                    {"noop": [noop], "split": [api, worker]},
                    "SubmitQuote",
                    concurrency,
                    rounds=run.sizes.rounds,
                )
                run.add(*split_figures(concurrency, results["split"], results["noop"]))
            run.notes["split"] = {
                "cpu_us_per_call": {
                    "noop": await cpu_per_call(run, {"noop": noop}, None),
                    "split": await cpu_per_call(
                        run, {"api": api, "worker": worker}, database.backends()
                    ),
                },
                "concurrency": SPLIT_CONCURRENCIES[-1],
            }
        finally:
            await run.servers.stop(noop, api, worker)
