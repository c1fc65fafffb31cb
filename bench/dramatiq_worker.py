"""A dramatiq peer worker (Redis broker) running no-op jobs, in its own process.

    python -m bench.dramatiq_worker --redis URL --queue Q --threads 8 --timeout-ms 20

dramatiq.Worker as its CLI runs it in each of its worker processes, with the
broker's default middleware; the bench starts as many of these processes as
the figure's settings say. Its idle poll backs off up to --timeout-ms (the
CLI's 1 s would let a worker that found the queue empty sleep through a
burst). It prints {"ready": true} on stdout once its consumer runs and stops on
SIGTERM after the jobs in hand. Nothing is logged per job (logging is not
configured, so only warnings reach stderr).
"""

import argparse
import json
import signal
import sys
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.procs import set_parent_death_signal

ACTOR_NAME = "noop"


def noop() -> None:
    """The job: nothing, as the quote service's bench.noop_processor prices nothing."""


def main() -> None:
    set_parent_death_signal()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--timeout-ms", type=int, default=20)
    options = parser.parse_args()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # dramatiq's broker is untyped, and its actor() types only the bare decorator.
    redis_broker: Any = RedisBroker
    broker = redis_broker(url=options.redis)
    dramatiq.set_broker(broker)
    dramatiq.actor(broker=broker, actor_name=ACTOR_NAME, queue_name=options.queue)(noop)
    worker = dramatiq.Worker(
        broker, worker_threads=options.threads, worker_timeout=options.timeout_ms
    )
    worker.start()
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    stopping.wait()
    worker.stop()
    broker.close()


if __name__ == "__main__":
    main()
