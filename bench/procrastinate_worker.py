"""A procrastinate peer worker (PostgreSQL, psycopg) running no-op jobs, in its own process.

    python -m bench.procrastinate_worker --database URL --queue Q --concurrency 16

The schema is applied by the bench beforehand (bench/pg_peer.py). The worker
hears new jobs by LISTEN/NOTIFY, as procrastinate does by default, so
its polling interval matters only if a notification is missed. It prints
{"ready": true} on stdout once its pool is open and stops on SIGTERM after the
jobs in hand, as procrastinate's worker does. It runs on uvloop, as the quote
service does by default. Nothing is logged per job (logging is not configured,
so only warnings reach stderr).
"""

import argparse
import json
import sys

import uvloop
from procrastinate import App, PsycopgConnector

from bench.procs import set_parent_death_signal

TASK_NAME = "noop"


async def noop() -> None:
    """The job: nothing, as the quote service's bench.noop_processor prices nothing."""


async def work(options: argparse.Namespace) -> None:
    # One connection per job in hand, and one to LISTEN on.
    size = options.concurrency + 1
    app = App(connector=PsycopgConnector(conninfo=options.database, min_size=size, max_size=size))
    app.task(name=TASK_NAME, queue=options.queue)(noop)
    async with app.open_async():
        sys.stdout.write(json.dumps({"ready": True}) + "\n")
        sys.stdout.flush()
        await app.run_worker_async(
            queues=[options.queue],
            concurrency=options.concurrency,
            wait=True,
            fetch_job_polling_interval=options.polling_interval,
            install_signal_handlers=True,
        )


def main() -> None:
    set_parent_death_signal()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--polling-interval", type=float, default=5.0)
    options = parser.parse_args()
    uvloop.run(work(options))


if __name__ == "__main__":
    main()
