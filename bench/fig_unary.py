"""Figure 1 (the unary ceiling) and figure 5 (the cost of durability).

SubmitQuote is measured on three servers in the same interleaved rounds: the
no-op ceiling, the quote service on SQLite (its default) and on memory, so
figure 5 is a ratio of two runs of the same round. GetMessage and GetStats are
measured on the no-op and the SQLite service.
"""

from bench import servers
from bench.context import Run
from bench.results import Figure, Target
from bench.unary import UnaryResult, compare
from tools.launcher import Launched

SUBMIT_TARGET = Target("ratio", ">=", 0.85)
DURABILITY_TARGET = Target("ratio", ">=", 0.70)
#: The concurrency whose durable/in-memory ratio the target is judged at:
#: throughput under load, where group commit has something to group.
DURABILITY_JUDGED_AT = 64
METHODS = ("SubmitQuote", "GetMessage", "GetStats")
CONCURRENCIES = (1, 16, 64)
NOOP_LABEL = "the no-op QuoteService (same server, options, interceptor, log level)"


def unary_figures(
    method: str,
    concurrency: int,
    subject: UnaryResult,
    ceiling: UnaryResult,
    store: str,
    *,
    section: str = "unary",
    note: str = "",
) -> list[Figure]:
    """The figures of subject against the no-op's ceiling, named
    section.method.cN.*; note stands in for the errors' count (a figure not
    measured, and why)."""
    base = f"{section}.{method}.c{concurrency}"
    params = {"concurrency": concurrency, "store": store, "calls": subject.calls}
    per_cpu = NOOP_LABEL + "; server CPU from the window's start until its work is done"
    target = SUBMIT_TARGET if method == "SubmitQuote" else None
    errors = note or (f"{subject.errors} errors" if subject.errors else "")
    return [
        Figure(
            f"{base}.rps", subject.rps, "calls/s", ceiling.rps, NOOP_LABEL, target, errors, params
        ),
        Figure(f"{base}.p50_ms", subject.p50_ms, "ms", ceiling.p50_ms, NOOP_LABEL, params=params),
        Figure(f"{base}.p99_ms", subject.p99_ms, "ms", ceiling.p99_ms, NOOP_LABEL, params=params),
        Figure(
            f"{base}.calls_per_cpu_s",
            per_cpu_second(subject),
            "calls/CPU-s",
            per_cpu_second(ceiling),
            per_cpu,
            note=note or ("" if subject.cpu_us else "no server CPU tick measured in the window"),
            params=params,
        ),
    ]


def per_cpu_second(result: UnaryResult) -> float | None:
    """Calls answered per second of server CPU: throughput with the noise of
    other tenants taken out."""
    return None if not result.cpu_us else 1e6 / result.cpu_us


async def figure_unary(run: Run) -> dict[str, Launched]:
    """Runs figures 1 and 5; returns the servers it started, for the levers to reuse."""
    run.say("figure 1/5: starting the no-op, SQLite and memory quote services")
    noop, durable, memory = await run.servers.start_all(
        servers.noop(), servers.quote("quote"), servers.quote("quote-memory", store="memory")
    )
    rounds = run.sizes.rounds
    for concurrency in CONCURRENCIES:
        run.say(f"figure 1/5: SubmitQuote at concurrency {concurrency}")
        results = await compare(
            run,
            {"noop": [noop], "sqlite": [durable], "memory": [memory]},
            "SubmitQuote",
            concurrency,
            rounds=rounds,
        )
        run.add(
            *unary_figures("SubmitQuote", concurrency, results["sqlite"], results["noop"], "sqlite")
        )
        run.add(*durability_figures(concurrency, results["sqlite"], results["memory"]))
    for method in METHODS[1:]:
        for concurrency in CONCURRENCIES:
            run.say(f"figure 1: {method} at concurrency {concurrency}")
            results = await compare(
                run,
                {"noop": [noop], "sqlite": [durable]},
                method,
                concurrency,
                rounds=rounds,
            )
            run.add(
                *unary_figures(method, concurrency, results["sqlite"], results["noop"], "sqlite")
            )
    return {"noop": noop, "quote": durable, "quote-memory": memory}


def durability_figures(concurrency: int, durable: UnaryResult, memory: UnaryResult) -> list[Figure]:
    judged = concurrency == DURABILITY_JUDGED_AT
    label = "the same quote service with --store memory"
    params = {"concurrency": concurrency, "method": "SubmitQuote"}
    return [
        Figure(
            f"durability.c{concurrency}.rps",
            durable.rps,
            "calls/s",
            memory.rps,
            label,
            DURABILITY_TARGET if judged else None,
            "" if judged else f"informational; the target is judged at c={DURABILITY_JUDGED_AT}",
            params,
        ),
        Figure(
            f"durability.c{concurrency}.calls_per_cpu_s",
            per_cpu_second(durable),
            "calls/CPU-s",
            per_cpu_second(memory),
            label,
            params=params,
        ),
    ]
