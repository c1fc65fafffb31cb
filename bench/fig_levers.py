"""The levers the ecosystem offers, each measured against the same server without it.

All at SubmitQuote, concurrency 64 unless named otherwise, in interleaved rounds:
the per-RPC log line (INFO against WARNING), asyncio's own event loop against
uvloop (the services' default, `--event-loop asyncio` against auto),
gRPC server options (max_concurrent_streams, optimization_target), SQLite's
synchronous=NORMAL, more concurrency for the group commit to batch (c=256),
and several no-op processes sharing a port with SO_REUSEPORT (the quote
service keeps its queue in its process, so only the ceiling can be spread).
"""

from bench import servers
from bench.context import Run
from bench.fig_unary import per_cpu_second
from bench.procs import free_port
from bench.results import Figure
from bench.unary import UnaryResult, compare, messages_held
from tools.launcher import Launched

CONCURRENCY = 64
BATCH_CONCURRENCY = 256
REUSEPORT_PROCESSES = 2
#: The reuseport comparison's client: two generators, two connections each, so
#: the kernel has connections to spread over the processes.
REUSEPORT_GENERATORS = 2
REUSEPORT_CHANNELS = 2
STATS = ("rps", "calls_per_cpu_s")
ASYNCIO_LOOP = ("--event-loop", "asyncio")

# label → (server spec, the label it is compared with, what the lever is). The
# quote levers are compared with a quote service started with them ("quote"),
# not with figure 1's, which by now holds tens of thousands of messages and is
# slower for it (measured as levers.held_messages).
_LEVER_SPECS = {
    "quote": (servers.quote("quote-fresh"), "quote-loaded", "held_messages.quote"),
    # A/A: the same server twice, so the table shows the noise floor of a comparison.
    "quote-control": (servers.quote("quote-control"), "quote", "control_same_server.quote"),
    "noop-info": (servers.noop("noop-info", log_level="INFO"), "noop", "log_info.noop"),
    "noop-asyncio": (
        servers.noop("noop-asyncio", args=ASYNCIO_LOOP),
        "noop",
        "asyncio_loop.noop",
    ),
    "quote-info": (servers.quote("quote-info", log_level="INFO"), "quote", "log_info.quote"),
    "quote-asyncio": (
        servers.quote("quote-asyncio", args=ASYNCIO_LOOP),
        "quote",
        "asyncio_loop.quote",
    ),
    "quote-streams": (
        servers.quote("quote-streams", launch=("--option", "grpc.max_concurrent_streams=100")),
        "quote",
        "max_concurrent_streams_100.quote",
    ),
    "quote-throughput": (
        servers.quote(
            "quote-throughput", launch=("--option", "grpc.optimization_target=throughput")
        ),
        "quote",
        "optimization_target_throughput.quote",
    ),
    "quote-normal": (
        servers.quote("quote-normal", launch=("--sqlite-synchronous", "NORMAL")),
        "quote",
        "sqlite_synchronous_normal.quote",
    ),
}


LEVER_NAMES = (
    *(
        f"levers.{name}.c{CONCURRENCY}.{stat}"
        for _, _, name in _LEVER_SPECS.values()
        for stat in STATS
    ),
    *(
        f"levers.{lever}_both.submit_vs_noop.c{CONCURRENCY}.{stat}"
        for lever in ("info", "asyncio")
        for stat in STATS
    ),
    *(f"levers.concurrency_{BATCH_CONCURRENCY}.quote.{stat}" for stat in STATS),
    *(f"levers.concurrency_{BATCH_CONCURRENCY}.durability.{stat}" for stat in STATS),
    *(f"levers.reuseport_{REUSEPORT_PROCESSES}proc.noop.c{CONCURRENCY}.{stat}" for stat in STATS),
)


def lever_figures(
    name: str, subject: UnaryResult, reference: UnaryResult, label: str, params: dict[str, object]
) -> list[Figure]:
    """Throughput, and calls per server CPU-second, each against the reference."""
    return [
        Figure(
            f"{name}.rps",
            subject.rps,
            "calls/s",
            reference.rps,
            label,
            params={**params, "p99_ms": subject.p99_ms, "reference_p99_ms": reference.p99_ms},
        ),
        Figure(
            f"{name}.calls_per_cpu_s",
            per_cpu_second(subject),
            "calls/CPU-s",
            per_cpu_second(reference),
            label,
            params=params,
        ),
    ]


async def figure_levers(run: Run, started: dict[str, Launched]) -> None:
    run.say("levers: starting a server per lever")
    port = free_port()
    reuseport = servers.noop(
        "noop-reuseport", launch=("--option", "grpc.so_reuseport=1"), port=port
    )
    specs = [spec for spec, _, _ in _LEVER_SPECS.values()]
    children = await run.servers.start_all(*specs)
    # One at a time: the first must hold the port before the second joins it.
    sharing = [await run.servers.start(reuseport) for _ in range(REUSEPORT_PROCESSES)]
    try:
        at = {label: [child] for label, child in zip(_LEVER_SPECS, children, strict=True)}
        at["noop"] = [started["noop"]]
        at["quote-memory"] = [started["quote-memory"]]
        at["quote-loaded"] = [started["quote"]]
        held = await messages_held(started["quote"].address)
        await _single_process_levers(run, at, held)
        await _batching(run, at)
        await _reuseport(run, at["noop"], sharing)
    finally:
        await run.servers.stop(*children, *sharing)


async def _single_process_levers(run: Run, at: dict[str, list[Launched]], held: int) -> None:
    run.say(f"levers: log level, event loop, server options, SQLite at c={CONCURRENCY}")
    labels = ["noop", "quote-loaded", *_LEVER_SPECS]
    results = await compare(
        run,
        {label: at[label] for label in labels},
        "SubmitQuote",
        CONCURRENCY,
        rounds=run.sizes.lever_rounds,
    )
    params = {"concurrency": CONCURRENCY, "method": "SubmitQuote"}
    for label, (_, baseline, name) in _LEVER_SPECS.items():
        if label == "quote":
            # Reversed: the figure is the loaded service, against a fresh one.
            subject, reference = results[baseline], results[label]
            what = f"a fresh quote service (the subject holds {held:,} messages)"
            extra = {"messages_held": held}
        else:
            subject, reference = results[label], results[baseline]
            fresh = "a fresh quote service" if baseline == "quote" else "the no-op"
            what, extra = f"{fresh} without the lever", {}
        run.add(
            *lever_figures(
                f"levers.{name}.c{CONCURRENCY}", subject, reference, what, {**params, **extra}
            )
        )
    # The two levers that apply to both sides: is the quote service nearer its
    # ceiling when both run with them?
    for lever in ("info", "asyncio"):
        run.add(
            *lever_figures(
                f"levers.{lever}_both.submit_vs_noop.c{CONCURRENCY}",
                results[f"quote-{lever}"],
                results[f"noop-{lever}"],
                f"the no-op with the same lever ({lever})",
                params,
            )
        )


async def _batching(run: Run, at: dict[str, list[Launched]]) -> None:
    run.say(f"levers: SubmitQuote at c={BATCH_CONCURRENCY} (more for group commit to batch)")
    results = await compare(
        run,
        {label: at[label] for label in ("noop", "quote-loaded", "quote-memory")},
        "SubmitQuote",
        BATCH_CONCURRENCY,
        rounds=run.sizes.lever_rounds,
    )
    params = {"concurrency": BATCH_CONCURRENCY, "method": "SubmitQuote"}
    run.add(
        *lever_figures(
            f"levers.concurrency_{BATCH_CONCURRENCY}.quote",
            results["quote-loaded"],
            results["noop"],
            "the no-op at the same concurrency",
            params,
        ),
        *lever_figures(
            f"levers.concurrency_{BATCH_CONCURRENCY}.durability",
            results["quote-loaded"],
            results["quote-memory"],
            "the memory store at the same concurrency",
            params,
        ),
    )


async def _reuseport(run: Run, single: list[Launched], sharing: list[Launched]) -> None:
    run.say(f"levers: {REUSEPORT_PROCESSES} no-op processes on one port (SO_REUSEPORT)")
    results = await compare(
        run,
        {"one": single, "several": sharing},
        "SubmitQuote",
        CONCURRENCY,
        rounds=run.sizes.lever_rounds,
        generators=REUSEPORT_GENERATORS,
        channels=REUSEPORT_CHANNELS,
    )
    run.add(
        *lever_figures(
            f"levers.reuseport_{REUSEPORT_PROCESSES}proc.noop.c{CONCURRENCY}",
            results["several"],
            results["one"],
            "one no-op process, the same client (2 generators x 2 connections)",
            {"concurrency": CONCURRENCY, "processes": REUSEPORT_PROCESSES},
        )
    )
