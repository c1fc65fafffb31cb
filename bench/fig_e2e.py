"""Figure 3: 10,000 quotes submitted at concurrency 64 and all COMPLETED, against
arq doing 10,000 no-op jobs, enqueued and completed, on the same machine.

Each round starts a fresh quote service (SQLite, memory, and SQLite on
asyncio's own event loop rather than uvloop: a lever) and a fresh arq worker
on a queue of its own, and drives each with the same load generator
loop: 64 callers sharing the count, then polling until every job is done
(GetStats for the quote service, the queue's sorted set for arq). Throughput is
jobs over the seconds from the first submission to the last completion.
"""

import json
import uuid

from bench import servers
from bench.context import Run
from bench.redis_peer import find_redis, redis_version
from bench.results import Figure, Target
from bench.stats import median

CONCURRENCY = 64
PEER_TARGET = Target("ratio", ">=", 1.5)
#: arq's settings: its best throughput here (its defaults, max_jobs=10 and
#: poll_delay=0.5 s, managed about 200 no-op jobs/s on this machine).
ARQ_MAX_JOBS = 64
ARQ_POLL_DELAY = 0.001
DEADLINE = 300.0
E2E_NAMES = (
    "e2e.sqlite.jobs_per_s",
    "e2e.memory.jobs_per_s",
    "e2e.arq.jobs_per_s",
    "levers.asyncio_loop.e2e.jobs_per_s",
)


async def _drive(run: Run, command: dict[str, object]) -> dict[str, object]:
    loadgen = run.loadgens[0]
    await loadgen.send(json.dumps(command))
    ready = await loadgen.read_json()
    if "error" in ready:
        raise RuntimeError(f"load generator: {ready['error']}")
    await loadgen.send('{"cmd": "go"}')
    answer = await loadgen.read_json(within=DEADLINE + 30)
    if "error" in answer:
        raise RuntimeError(f"load generator: {answer['error']}")
    return answer


async def _quote_round(run: Run, peer: str) -> dict[str, object]:
    store, _, loop = peer.partition("-")
    args = ("--event-loop", loop) if loop else ()
    (service,) = await run.servers.start_all(servers.quote(f"e2e-{peer}", store=store, args=args))
    try:
        return await _drive(
            run,
            {
                "cmd": "quotes",
                "target": service.address,
                "count": run.sizes.e2e_count,
                "concurrency": CONCURRENCY,
                "deadline": DEADLINE,
            },
        )
    finally:
        await run.servers.stop(service)


async def _arq_round(run: Run, url: str) -> dict[str, object]:
    queue = f"quoteflow-bench-{uuid.uuid4().hex[:12]}"
    worker = await run.processes.start(
        "arq-worker",
        [
            "-m",
            "bench.arq_worker",
            "--redis",
            url,
            "--queue",
            queue,
            "--max-jobs",
            str(ARQ_MAX_JOBS),
            "--poll-delay",
            str(ARQ_POLL_DELAY),
        ],
    )
    try:
        return await _drive(
            run,
            {
                "cmd": "arq",
                "redis": url,
                "queue": queue,
                "count": run.sizes.e2e_count,
                "concurrency": CONCURRENCY,
                "deadline": DEADLINE,
            },
        )
    finally:
        await run.processes.stop(worker)


def _rate(answer: dict[str, object], count: int) -> float | None:
    """Jobs per second, or None unless every job completed."""
    if not answer["finished"] or answer["completed"] != count or answer["errors"]:
        return None
    return count / float(answer["total_seconds"])  # type: ignore[arg-type]


async def figure_e2e(run: Run) -> None:
    count = run.sizes.e2e_count
    url, found = await find_redis(run)
    run.notes["e2e"] = {
        "redis": found,
        "redis_version": await redis_version(url) if url else None,
        "arq": {"max_jobs": ARQ_MAX_JOBS, "poll_delay": ARQ_POLL_DELAY},
        "rounds": [],
    }
    # sqlite-asyncio: the lever of the services' event loop, end to end.
    peers = ["sqlite", "arq", "memory", "sqlite-asyncio"]
    if not url:
        peers.remove("arq")
    rates: dict[str, list[float | None]] = {peer: [] for peer in peers}
    for number in range(run.sizes.e2e_rounds):
        shift = number % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            run.say(f"figure 3: round {number + 1}, {count:,} jobs through {peer}")
            if peer == "arq":
                assert url is not None
                answer = await _arq_round(run, url)
            else:
                answer = await _quote_round(run, peer)
            run.notes["e2e"]["rounds"].append({"peer": peer, **answer})
            rates[peer].append(_rate(answer, count))

    def summary(peer: str) -> float | None:
        measured = rates.get(peer, [])
        if not measured or None in measured:
            return None
        return median([rate for rate in measured if rate is not None])

    arq = summary("arq")
    skipped = "" if url else found
    params = {"jobs": count, "concurrency": CONCURRENCY, "rounds": run.sizes.e2e_rounds}
    label = f"arq {ARQ_MAX_JOBS} jobs at a time, poll {ARQ_POLL_DELAY:g}s, no-op jobs"
    run.add(
        Figure(
            "e2e.sqlite.jobs_per_s",
            summary("sqlite"),
            "jobs/s",
            arq,
            label,
            PEER_TARGET,
            skipped or "durable (SQLite) store, the default",
            params,
        ),
        Figure(
            "e2e.memory.jobs_per_s",
            summary("memory"),
            "jobs/s",
            arq,
            label,
            note=skipped or "in-memory store; informational, the target is on SQLite",
            params=params,
        ),
        Figure(
            "levers.asyncio_loop.e2e.jobs_per_s",
            summary("sqlite-asyncio"),
            "jobs/s",
            summary("sqlite"),
            "the same (SQLite) on uvloop, the services' default",
            note="the quote service on asyncio's own event loop (--event-loop asyncio)",
            params=params,
        ),
        Figure(
            "e2e.arq.jobs_per_s",
            arq,
            "jobs/s",
            note=skipped or found,
            params={**params, "max_jobs": ARQ_MAX_JOBS, "poll_delay": ARQ_POLL_DELAY},
        ),
    )
