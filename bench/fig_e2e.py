"""Figure 3: 10,000 quotes submitted at concurrency 64 and all COMPLETED, against
three job queues doing 10,000 no-op jobs, enqueued and completed, on the same
machine: arq and dramatiq (Redis) and procrastinate (PostgreSQL).

Each round starts a fresh quote service (SQLite, memory, and SQLite on
asyncio's own event loop rather than uvloop: a lever) and fresh peer workers
on a queue of their own, and drives each with the same load generator loop:
64 callers sharing the count, then polling until every job is done (GetStats
for the quote service; the queue's own record of open jobs for the peers).

The quote service on PostgreSQL (`--store postgres`) runs as one replica and
as two over the same database (the callers' calls spread round-robin over
both), each round on a database of its own, fresh and dropped after; the
round trips it asked of PostgreSQL (bench.pg_peer.round_trips: transactions,
or statements where pg_stat_statements is preloaded), from before the
services start to after they have stopped, are divided by the jobs. The
batch variant (sqlite-batch) submits the same jobs with BatchSubmitQuotes,
BATCH a call, from the same 64 callers.
Throughput is jobs over the seconds from the first submission to the last
completion. CPU per job is every process of the system (the load generator,
the service or the workers, the broker or the database's backends: see
bench/cpu_meter.py) over the same span, divided by the jobs.
"""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from bench import servers
from bench.context import Run
from bench.cpu_meter import CpuMeter
from bench.pg_peer import Database, fresh_database, round_trips, wait_idle
from bench.redis_peer import find_redis, redis_version
from bench.results import Figure, Target
from bench.stats import median
from tools.launcher import Launched

CONCURRENCY = 64
PEER_TARGET = Target("ratio", ">=", 1.5)
#: Each peer at the settings that gave it its best throughput here.
#: arq: its defaults, max_jobs=10 and poll_delay=0.5 s, managed about 200
#: no-op jobs/s on this machine.
ARQ = {"max_jobs": 64, "poll_delay": 0.001}
#: dramatiq: worker processes x threads each (its CLI's defaults are a
#: process per core, 8 threads, and a 1 s idle poll).
DRAMATIQ = {"processes": 2, "threads": 8, "timeout_ms": 20}
#: procrastinate: one worker process, jobs in hand at once (its default is 1;
#: 1, 4, 8 and 64 measured within noise of one another here, 4 best), and the
#: client's connection pool.
PROCRASTINATE = {"concurrency": 4, "client_pool": 16}
#: quoteflow: attempts each quote process runs at once (--workers; the
#: service's default is 4). 16 is dramatiq's 2 x 8 threads, under arq's 64;
#: 4, 16 and 64 measured here: see docs/benchmarks.md.
QUOTE_WORKERS = 64
#: A round's limit: procrastinate takes a few minutes over 10,000 jobs here.
DEADLINE = 600.0
#: Targets of the quote service on PostgreSQL (against procrastinate and the
#: fastest Redis peer) and of the batch variant (against the fastest peer).
PROCRASTINATE_TARGET = Target("ratio", ">=", 5.0)
REDIS_PEER_TARGET = Target("ratio", ">=", 1.0)
ROUND_TRIP_TARGET = Target("value", "<=", 1.0)
BATCH_TARGET = Target("ratio", ">=", 1.5)
BATCH_CPU_TARGET = Target("ratio", "<=", 0.7)
#: Submissions per BatchSubmitQuotes call in the batch variant.
BATCH = 100
QUOTEFLOW = ("sqlite", "memory", "sqlite-asyncio", "postgres", "postgres-2", "sqlite-batch")
#: Quote services on PostgreSQL -> replicas over the one database.
POSTGRES = {"postgres": 1, "postgres-2": 2}
PEERS = ("arq", "dramatiq", "procrastinate")
REDIS_PEERS = ("arq", "dramatiq")
#: The systems of the sections that run some of figure 3 (each with every peer,
#: since their figures are ratios to peers measured in the same run).
SECTION_SYSTEMS = {
    "e2e-postgres": ("postgres", "postgres-2", *PEERS),
    "e2e-batch": ("sqlite-batch", *PEERS),
}
#: The figure names' spelling of a system.
_SPELLING = {"postgres-2": "postgres2", "sqlite-batch": "sqlite_batch"}
E2E_NAMES = (
    "e2e.sqlite.jobs_per_s",
    "e2e.memory.jobs_per_s",
    "e2e.arq.jobs_per_s",
    "e2e.dramatiq.jobs_per_s",
    "e2e.procrastinate.jobs_per_s",
    "e2e.sqlite.vs_fastest_peer.jobs_per_s",
    "e2e.sqlite.cpu_us_per_job",
    "e2e.memory.cpu_us_per_job",
    "e2e.arq.cpu_us_per_job",
    "e2e.dramatiq.cpu_us_per_job",
    "e2e.procrastinate.cpu_us_per_job",
    "levers.asyncio_loop.e2e.jobs_per_s",
    "e2e.postgres.jobs_per_s",
    "e2e.postgres.vs_fastest_redis_peer.jobs_per_s",
    "e2e.postgres.cpu_us_per_job",
    "e2e.postgres.round_trips_per_job",
    "e2e.postgres2.jobs_per_s",
    "e2e.postgres2.vs_fastest_redis_peer.jobs_per_s",
    "e2e.postgres2.cpu_us_per_job",
    "e2e.postgres2.round_trips_per_job",
    "e2e.sqlite_batch.vs_fastest_peer.jobs_per_s",
    "e2e.sqlite_batch.cpu_us_per_job",
)


@dataclass
class PeerBackends:
    """What the peers run on this run: a Redis, a database, or why not."""

    redis: str | None
    redis_found: str
    database: Database
    #: peer -> why it is not run (missing from the rounds).
    skipped: dict[str, str] = field(default_factory=dict)


async def drive(run: Run, command: dict[str, object], meter: CpuMeter) -> dict[str, Any]:
    """One round: the load generator's answer, with the system's CPU seconds by part."""
    loadgen = run.loadgens[0]
    meter.processes["client"] = loadgen.pid
    await loadgen.send(json.dumps(command))
    ready = await loadgen.read_json()
    if "error" in ready:
        raise RuntimeError(f"load generator: {ready['error']}")
    await meter.start()
    await loadgen.send('{"cmd": "go"}')
    answer = await loadgen.read_json(within=DEADLINE + 30)
    cpu = await meter.stop()
    if "error" in answer:
        raise RuntimeError(f"load generator: {answer['error']}")
    return {**answer, "cpu_seconds": {part: round(s, 3) for part, s in cpu.items()}}


def load_command(cmd: str, run: Run, **fields: object) -> dict[str, object]:
    return {
        "cmd": cmd,
        "count": run.sizes.e2e_count,
        "concurrency": CONCURRENCY,
        "deadline": DEADLINE,
        **fields,
    }


async def _quote_round(run: Run, peer: str) -> dict[str, Any]:
    if peer in POSTGRES:
        return await _postgres_round(run, peer, POSTGRES[peer])
    store, _, variant = peer.partition("-")
    batch = {"batch": BATCH} if variant == "batch" else {}
    args = ("--event-loop", variant) if variant and not batch else ()
    args = (*args, "--workers", str(QUOTE_WORKERS))
    (service,) = await run.servers.start_all(servers.quote(f"e2e-{peer}", store=store, args=args))
    try:
        meter = CpuMeter({"service": service.pid})
        return await drive(run, load_command("quotes", run, target=service.address, **batch), meter)
    finally:
        await run.servers.stop(service)


async def _postgres_round(run: Run, peer: str, replicas: int) -> dict[str, Any]:
    """Replicas of the quote service over one fresh database, and its round trips."""
    async with fresh_database("bench_quote", procrastinate=False) as database:
        if database.url is None:
            raise RuntimeError(database.found)
        before = await round_trips(database)
        specs = [
            servers.quote(
                f"e2e-{peer}-{n}",
                store="postgres",
                args=("--database-url", database.url, "--workers", str(QUOTE_WORKERS)),
            )
            for n in range(replicas)
        ]
        started = await run.servers.start_all(*specs)
        try:
            parts = {
                f"service{n}" if replicas > 1 else "service": s.pid for n, s in enumerate(started)
            }
            meter = CpuMeter(parts, backends=database.backends())
            command = load_command("quotes", run, targets=[s.address for s in started])
            answer = await drive(run, command, meter)
        finally:
            await run.servers.stop(*started)
        # The backends report their counts as they exit.
        await wait_idle(database)
        return {**answer, database.counts: await round_trips(database) - before}


@contextlib.asynccontextmanager
async def _workers(run: Run, name: str, argvs: list[list[str]]) -> AsyncIterator[list[Launched]]:
    """Peer worker processes, each ready (it says so on stdout), stopped after."""
    started: list[Launched] = []
    try:
        for argv in argvs:
            started.append(await run.processes.start(name, argv, talk=True))
        for worker in started:
            await worker.read_json()
        yield started
    finally:
        for worker in started:
            await run.processes.stop(worker)


def _worker_meter(workers: list[Launched], **options: Any) -> CpuMeter:
    return CpuMeter({f"worker{n}": w.pid for n, w in enumerate(workers)}, **options)


async def _arq_round(run: Run, url: str) -> dict[str, Any]:
    queue = f"quoteflow-bench-{uuid.uuid4().hex[:12]}"
    argv = ["-m", "bench.arq_worker", "--redis", url, "--queue", queue]
    argv += ["--max-jobs", str(ARQ["max_jobs"]), "--poll-delay", str(ARQ["poll_delay"])]
    async with _workers(run, "arq-worker", [argv]) as workers:
        command = load_command("arq", run, redis=url, queue=queue)
        return await drive(run, command, _worker_meter(workers, redis_url=url))


async def _dramatiq_round(run: Run, url: str) -> dict[str, Any]:
    queue = f"quoteflow-bench-{uuid.uuid4().hex[:12]}"
    argv = ["-m", "bench.dramatiq_worker", "--redis", url, "--queue", queue]
    argv += ["--threads", str(DRAMATIQ["threads"]), "--timeout-ms", str(DRAMATIQ["timeout_ms"])]
    async with _workers(run, "dramatiq-worker", [argv] * DRAMATIQ["processes"]) as workers:
        command = load_command("dramatiq", run, redis=url, queue=queue)
        return await drive(run, command, _worker_meter(workers, redis_url=url))


async def _procrastinate_round(run: Run, database: Database) -> dict[str, Any]:
    assert database.url is not None
    queue = f"bench_{uuid.uuid4().hex[:12]}"
    argv = ["-m", "bench.procrastinate_worker", "--database", database.url, "--queue", queue]
    argv += ["--concurrency", str(PROCRASTINATE["concurrency"])]
    async with _workers(run, "procrastinate-worker", [argv]) as workers:
        command = load_command(
            "procrastinate",
            run,
            database=database.url,
            queue=queue,
            pool_size=PROCRASTINATE["client_pool"],
        )
        return await drive(run, command, _worker_meter(workers, backends=database.backends()))


def jobs_per_second(answer: dict[str, Any], count: int) -> float | None:
    """Jobs per second, or None unless every job completed."""
    if not answer["finished"] or answer["completed"] != count or answer["errors"]:
        return None
    return count / float(answer["total_seconds"])


def _cpu_us_per_job(answer: dict[str, Any], count: int) -> float | None:
    if jobs_per_second(answer, count) is None:
        return None
    return float(sum(answer["cpu_seconds"].values())) / count * 1e6


@contextlib.asynccontextmanager
async def _backends(run: Run) -> AsyncIterator[PeerBackends]:
    url, found = await find_redis(run)
    missing = {peer: f"skipped: {peer} is not installed (the bench extra)" for peer in PEERS}
    async with fresh_database() as database:
        backends = PeerBackends(url, found, database)
        for peer in PEERS:
            if find_spec(peer) is None:
                backends.skipped[peer] = missing[peer]
        for peer in ("arq", "dramatiq"):
            if url is None:
                backends.skipped.setdefault(peer, found)
        if database.url is None:
            for peer in ("procrastinate", *POSTGRES):
                backends.skipped.setdefault(peer, database.found)
        yield backends


async def _round(run: Run, peer: str, backends: PeerBackends) -> dict[str, Any]:
    if peer == "arq":
        assert backends.redis is not None
        return await _arq_round(run, backends.redis)
    if peer == "dramatiq":
        assert backends.redis is not None
        return await _dramatiq_round(run, backends.redis)
    if peer == "procrastinate":
        return await _procrastinate_round(run, backends.database)
    return await _quote_round(run, peer)


async def figure_e2e(run: Run) -> None:
    count = run.sizes.e2e_count
    async with _backends(run) as backends:
        url = backends.redis
        run.notes["e2e"] = {
            "redis": backends.redis_found,
            "redis_version": await redis_version(url) if url else None,
            "postgres": backends.database.found,
            "postgres_version": backends.database.version,
            "arq": ARQ,
            "dramatiq": DRAMATIQ,
            "procrastinate": PROCRASTINATE,
            "batch": BATCH,
            "skipped": backends.skipped,
            "rounds": [],
        }
        # sqlite-asyncio: the lever of the services' event loop, end to end.
        order = ["sqlite", "arq", "postgres", "dramatiq", "sqlite-batch", "memory"]
        order += ["procrastinate", "postgres-2", "sqlite-asyncio"]
        for peer in order:
            if run.e2e_systems is not None and peer not in run.e2e_systems:
                backends.skipped.setdefault(peer, "skipped: not among the sections run")
            if run.e2e_peers is not None and peer not in run.e2e_peers:
                backends.skipped.setdefault(peer, "skipped: not among --e2e-peers")
        peers = [peer for peer in order if peer not in backends.skipped]
        answers: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
        for number in range(run.sizes.e2e_rounds):
            shift = number % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                run.say(f"figure 3: round {number + 1}, {count:,} jobs through {peer}")
                answer = await _round(run, peer, backends)
                run.notes["e2e"]["rounds"].append({"peer": peer, **answer})
                answers[peer].append(answer)
    _add_figures(run, answers, backends.skipped)


def _summary(measured: list[float | None]) -> float | None:
    if not measured or None in measured:
        return None
    return median([value for value in measured if value is not None])


def _add_figures(
    run: Run, answers: dict[str, list[dict[str, Any]]], skipped: dict[str, str]
) -> None:
    count = run.sizes.e2e_count
    rate = {
        p: _summary([jobs_per_second(a, count) for a in answers.get(p, [])])
        for p in (*QUOTEFLOW, *PEERS)
    }
    cpu = {p: _summary([_cpu_us_per_job(a, count) for a in answers.get(p, [])]) for p in rate}
    params = {"jobs": count, "concurrency": CONCURRENCY, "rounds": run.sizes.e2e_rounds}
    settings: dict[str, dict[str, Any]] = {
        "arq": ARQ,
        "dramatiq": DRAMATIQ,
        "procrastinate": PROCRASTINATE,
    }
    measured = [(rate[p], p) for p in PEERS if rate[p] is not None]
    fastest = max(measured)[1] if measured else None
    fastest_label = f"{fastest}, the fastest peer" if fastest else "no peer measured"
    arq = rate["arq"]
    arq_skipped = skipped.get("arq", "")
    label = f"arq {ARQ['max_jobs']} jobs at a time, poll {ARQ['poll_delay']:g}s, no-op jobs"
    run.add(
        Figure(
            "e2e.sqlite.jobs_per_s",
            rate["sqlite"],
            "jobs/s",
            arq,
            label,
            PEER_TARGET,
            skipped.get("sqlite") or arq_skipped or "durable (SQLite) store, the default",
            params,
        ),
        Figure(
            "e2e.memory.jobs_per_s",
            rate["memory"],
            "jobs/s",
            arq,
            label,
            note=skipped.get("memory")
            or arq_skipped
            or "in-memory store; informational, the target is on SQLite",
            params=params,
        ),
        Figure(
            "e2e.sqlite.vs_fastest_peer.jobs_per_s",
            rate["sqlite"],
            "jobs/s",
            rate[fastest] if fastest else None,
            fastest_label,
            note="quoteflow (SQLite) against whichever peer was fastest in this run",
            params=params,
        ),
        Figure(
            "levers.asyncio_loop.e2e.jobs_per_s",
            rate["sqlite-asyncio"],
            "jobs/s",
            rate["sqlite"],
            "the same (SQLite) on uvloop, the services' default",
            note=skipped.get("sqlite-asyncio")
            or "the quote service on asyncio's own event loop (--event-loop asyncio)",
            params=params,
        ),
    )
    for peer in PEERS:
        note = (
            skipped.get(peer)
            or run.notes["e2e"]["postgres" if peer == "procrastinate" else "redis"]
        )
        peer_params = {**params, **settings[peer]}
        run.add(
            Figure(f"e2e.{peer}.jobs_per_s", rate[peer], "jobs/s", note=note, params=peer_params)
        )
    _add_new_figures(run, rate, cpu, answers, skipped, fastest)
    for name in ("sqlite", "memory", *PEERS):
        reference = cpu[fastest] if fastest and name in QUOTEFLOW else None
        run.add(
            Figure(
                f"e2e.{name}.cpu_us_per_job",
                cpu[name],
                "µs CPU/job",
                reference,
                fastest_label if reference is not None else "",
                note=skipped.get(name, "every process of the system, over the jobs"),
                params=params,
            )
        )


def _round_trips(answers: list[dict[str, Any]], count: int) -> tuple[float | None, str]:
    """The median round trips per job over rounds, and what was counted."""
    kinds = [kind for kind in ("statements", "transactions") if answers and kind in answers[0]]
    if not kinds:
        return None, "transactions"
    # The load generator's GetStats polls are the bench watching, not the jobs:
    # each is one statement (the store's stats query), one transaction.
    return _summary([(a[kinds[0]] - a.get("polls", 0)) / count for a in answers]), kinds[0]


def _add_new_figures(
    run: Run,
    rate: dict[str, float | None],
    cpu: dict[str, float | None],
    answers: dict[str, list[dict[str, Any]]],
    skipped: dict[str, str],
    fastest: str | None,
) -> None:
    """The quote service on PostgreSQL (one replica and two) and the batch variant."""
    count = run.sizes.e2e_count
    params = {"jobs": count, "concurrency": CONCURRENCY, "rounds": run.sizes.e2e_rounds}
    redis = [(rate[p], p) for p in REDIS_PEERS if rate[p] is not None]
    fastest_redis = max(redis)[1] if redis else None
    redis_label = f"{fastest_redis}, the fastest Redis peer" if fastest_redis else "no Redis peer"
    procrastinate_label = "procrastinate (PostgreSQL)"
    if "procrastinate" in skipped:
        procrastinate_label = f"procrastinate: {skipped['procrastinate']}"
    for system, replicas in POSTGRES.items():
        name = f"e2e.{_SPELLING.get(system, system)}"
        note = skipped.get(system) or (
            f"store postgres, {replicas} replica{'s' if replicas > 1 else ''} over one fresh "
            "database" + (", the calls spread over both" if replicas > 1 else "")
        )
        p_params = {**params, "replicas": replicas, "workers_per_replica": 4}
        trips, counted = _round_trips(answers.get(system, []), count)
        run.add(
            Figure(
                f"{name}.jobs_per_s",
                rate[system],
                "jobs/s",
                rate["procrastinate"],
                procrastinate_label,
                PROCRASTINATE_TARGET,
                note,
                p_params,
            ),
            Figure(
                f"{name}.vs_fastest_redis_peer.jobs_per_s",
                rate[system],
                "jobs/s",
                rate[fastest_redis] if fastest_redis else None,
                redis_label,
                REDIS_PEER_TARGET,
                skipped.get(system) or "against whichever Redis peer was fastest in this run",
                p_params,
            ),
            Figure(
                f"{name}.cpu_us_per_job",
                cpu[system],
                "µs CPU/job",
                cpu["procrastinate"],
                procrastinate_label,
                note=skipped.get(system)
                or "every process of the system over the jobs, the run's PostgreSQL backends too",
                params=p_params,
            ),
            Figure(
                f"{name}.round_trips_per_job",
                trips,
                f"{counted}/job",
                target=ROUND_TRIP_TARGET,
                note=skipped.get(system)
                or (
                    f"{counted} the run's database ran (pg_stat_"
                    + (
                        "statements"
                        if counted == "statements"
                        else "database xact_commit + xact_rollback"
                    )
                    + "), from before the replicas started to after they stopped, less the "
                    "load generator's GetStats polls (one each), over the jobs"
                ),
                params=p_params,
            ),
        )
    fastest_label = f"{fastest}, the fastest peer" if fastest else "no peer measured"
    b_params = {**params, "batch": BATCH}
    b_note = skipped.get("sqlite-batch")
    run.add(
        Figure(
            "e2e.sqlite_batch.vs_fastest_peer.jobs_per_s",
            rate["sqlite-batch"],
            "jobs/s",
            rate[fastest] if fastest else None,
            fastest_label,
            BATCH_TARGET,
            b_note or f"quoteflow (SQLite), BatchSubmitQuotes of {BATCH}, against the fastest peer",
            b_params,
        ),
        Figure(
            "e2e.sqlite_batch.cpu_us_per_job",
            cpu["sqlite-batch"],
            "µs CPU/job",
            cpu[fastest] if fastest else None,
            fastest_label,
            BATCH_CPU_TARGET,
            b_note or "every process of the system, over the jobs",
            b_params,
        ),
    )
