"""Figure 12: what metrics and traces cost.

The quote service on SQLite (its default) runs three ways in the same
interleaved rounds: with neither (--metrics-port 0, no OTLP endpoint), with
/metrics served (--metrics-port, scraped once a second as a busy Prometheus
would), and with tracing on, exporting every span over OTLP/gRPC to a
collector stand-in in the bench's process (tools.otlp_collector). Measured:
SubmitQuote at each of OBSERVABILITY_CONCURRENCIES, and end to end (a fresh
service per round, e2e_count quotes submitted at concurrency 64 and all
COMPLETED, as figure 3 drives it). Each ratio is the variant over neither.
"""

import asyncio
import contextlib
import random
import urllib.request
from collections.abc import AsyncIterator

from bench import servers
from bench.context import Run
from bench.cpu_meter import CpuMeter
from bench.fig_e2e import QUOTE_WORKERS, drive, jobs_per_second, load_command
from bench.procs import free_port
from bench.results import Figure, Target
from bench.stats import median
from bench.unary import compare
from tools.otlp_collector import start_collector

OBSERVABILITY_CONCURRENCIES = (1, 64)
TARGETS = {"metrics": Target("ratio", ">=", 0.95), "tracing": Target("ratio", ">=", 0.85)}
VARIANTS = ("off", "metrics", "tracing")
OBSERVABILITY_NAMES = tuple(
    [
        f"observability.{variant}.SubmitQuote.c{c}.{stat}"
        for variant in TARGETS
        for c in OBSERVABILITY_CONCURRENCIES
        for stat in ("rps", "p99_ms")
    ]
    + [f"observability.{variant}.e2e.jobs_per_s" for variant in TARGETS]
)
#: Each variant's extra flags (a metrics port follows them) and environment.
Specs = dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]]
OFF_LABEL = "the same quote service with no metrics and no tracing, same rounds"
# How often the scraper reads /metrics: a busy Prometheus's interval is 15 s.
SCRAPE_INTERVAL = 1.0


async def figure_observability(run: Run) -> None:
    run.say("figure 12: SubmitQuote and end to end with metrics, and with tracing, against neither")
    collector, collector_server, endpoint = await start_collector()
    try:
        specs = _specs(endpoint)
        await _submit_quote(run, specs)
        await _end_to_end(run, specs)
        run.say(f"figure 12: the collector received {len(collector.spans)} spans")
    finally:
        await collector_server.stop(None)


def _specs(endpoint: str) -> Specs:
    """Each variant's extra arguments and environment (its metrics port, chosen
    when it starts)."""
    tracing = (("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint), ("OTEL_SERVICE_NAME", "bench-quote"))
    return {"off": ((), ()), "metrics": (("--metrics-port",), ()), "tracing": ((), tracing)}


def _spec(
    name: str, variant: str, specs: Specs, *args: str
) -> tuple[servers.ServerSpec, int | None]:
    flags, env = specs[variant]
    port = free_port() if flags else None
    extra = (*flags, str(port)) if port is not None else ()
    return servers.quote(name, args=(*extra, *args), env=env), port


@contextlib.asynccontextmanager
async def _scraped(port: int | None) -> AsyncIterator[None]:
    """Read /metrics at port every SCRAPE_INTERVAL while the block runs."""
    if port is None:
        yield
        return

    async def scrape() -> None:
        while True:
            await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
            await asyncio.sleep(SCRAPE_INTERVAL)

    task = asyncio.create_task(scrape())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as answer:
        answer.read()


async def _submit_quote(run: Run, specs: Specs) -> None:
    started: dict[str, servers.ServerSpec] = {}
    ports: dict[str, int | None] = {}
    for variant in VARIANTS:
        spec, ports[variant] = _spec(f"observability-{variant}", variant, specs)
        started[variant] = spec
    launched = dict(zip(VARIANTS, await run.servers.start_all(*started.values()), strict=True))
    try:
        async with _scraped(ports["metrics"]):
            for concurrency in OBSERVABILITY_CONCURRENCIES:
                run.say(f"figure 12: SubmitQuote at concurrency {concurrency}")
                results = await compare(
                    run,
                    {variant: [launched[variant]] for variant in VARIANTS},
                    "SubmitQuote",
                    concurrency,
                    rounds=run.sizes.rounds,
                )
                reference = results["off"]
                for variant, target in TARGETS.items():
                    subject = results[variant]
                    base = f"observability.{variant}.SubmitQuote.c{concurrency}"
                    params = {"concurrency": concurrency, "store": "sqlite", "calls": subject.calls}
                    errors = f"{subject.errors} errors" if subject.errors else ""
                    run.add(
                        Figure(
                            f"{base}.rps", subject.rps, "calls/s", reference.rps, OFF_LABEL,
                            target, errors, params,
                        ),
                        Figure(
                            f"{base}.p99_ms", subject.p99_ms, "ms", reference.p99_ms, OFF_LABEL,
                            params=params,
                        ),
                    )  # fmt: skip
    finally:
        await run.servers.stop(*launched.values())


async def _end_to_end(run: Run, specs: Specs) -> None:
    rates: dict[str, list[float | None]] = {variant: [] for variant in VARIANTS}
    count = run.sizes.e2e_count
    for number in range(run.sizes.e2e_rounds):
        for variant in random.Random(number).sample(VARIANTS, len(VARIANTS)):
            run.say(f"figure 12: end to end, {variant}, round {number + 1}")
            spec, port = _spec(
                f"observability-e2e-{variant}", variant, specs, "--workers", str(QUOTE_WORKERS)
            )
            (service,) = await run.servers.start_all(spec)
            try:
                async with _scraped(port):
                    command = load_command("quotes", run, target=service.address)
                    answer = await drive(run, command, CpuMeter({"service": service.pid}))
                rates[variant].append(jobs_per_second(answer, count))
            finally:
                await run.servers.stop(service)
    reference = _median(rates["off"])
    for variant, target in TARGETS.items():
        measured = _median(rates[variant])
        note = "" if measured is not None else "a round did not complete every quote"
        run.add(
            Figure(
                f"observability.{variant}.e2e.jobs_per_s", measured, "jobs/s", reference,
                OFF_LABEL, target, note, {"count": count, "rounds": run.sizes.e2e_rounds},
            )
        )  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return median([value for value in values if value is not None])
