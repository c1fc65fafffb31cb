"""The peer: an arq worker (Redis) running no-op jobs, in its own process.

    python -m bench.arq_worker --redis URL --queue Q --max-jobs 64 --poll-delay 0.005

arq's defaults (max_jobs 10, poll_delay 0.5 s) cap a worker at a few dozen
no-op jobs a second, which would flatter quoteflow; the bench runs it with
the settings that gave arq its best throughput here (see docs/benchmarks.md).
It prints {"ready": true} on stdout once connected. Nothing is logged per
job, as the quote service logs nothing per message at WARNING. It runs on
uvloop, as the quote service does by default.
"""

import argparse
import asyncio
import json
import sys
from typing import Any

import uvloop
from arq.connections import RedisSettings
from arq.worker import Worker

from bench.procs import set_parent_death_signal


async def noop(ctx: dict[str, Any]) -> None:
    """The job: nothing, as the quote service's bench.noop_processor prices nothing."""


async def ready(ctx: dict[str, Any]) -> None:
    # Once connected: the bench measures the round's CPU from here on, not the imports.
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()


def main() -> None:
    set_parent_death_signal()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--max-jobs", type=int, default=64)
    parser.add_argument("--poll-delay", type=float, default=0.005)
    options = parser.parse_args()
    asyncio.set_event_loop(uvloop.new_event_loop())
    worker = Worker(
        functions=[noop],
        redis_settings=RedisSettings.from_dsn(options.redis),
        queue_name=options.queue,
        max_jobs=options.max_jobs,
        poll_delay=options.poll_delay,
        handle_signals=True,
        health_check_interval=3600,
        on_startup=ready,
    )
    worker.run()


if __name__ == "__main__":
    main()
