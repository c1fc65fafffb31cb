"""Figure 2: the queue engine in-process, no gRPC, in a process of its own.

    python -m bench.engine --items 50000 --pending 100000 --calls 2000

Throughput: `items` submissions to the quote service's queue, a
StoreMessageQueue over the durable core's MemoryJobStore (the quote service's
codecs, four workers, a no-op processor), from one producer that
awaits each submit as a caller would, until every item is COMPLETED; an
enqueue and a dequeue per item. The reference moves the same items,
(-priority, seq, id) tuples, through a bare asyncio.PriorityQueue with the
same producer and four consumers calling the same no-op.

GetStats: the quote servicer's own GetStats (queue.stats() and its protobuf
conversion), timed over `calls` calls with nothing pending and with `pending`
messages pending (the workers not started, so nothing leaves PENDING). The
no-op servicer's GetStats, timed the same way, is the reference for the first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable

from bench.noop_processor import RESULT
from bench.noop_server import NoopQuoteServicer
from bench.procs import set_parent_death_signal
from queues.core.memory_store import MemoryJobStore
from queues.message import Outcome, Priority
from queues.store_queue import StoreMessageQueue
from quote_svc.codecs import QuoteJobCodec, QuoteResultCodec
from quote_svc.domain import QuoteResult, Submission
from quote_svc.pricing import QuoteJob
from quote_svc.servicer import QuoteServicer
from quoteflow.quote.v1 import quote_service_pb2 as pb

WORKERS = 4
#: Best of this many timings of `calls` GetStats calls (noise only slows).
REPEATS = 5
DEADLINE = 300.0
JOB = QuoteJob(Submission("Ada Lovelace", "12 St James Square, London", 250_000))


async def noop(job: QuoteJob) -> Outcome[QuoteResult]:
    return Outcome(RESULT)


def new_queue(max_size: int) -> StoreMessageQueue[QuoteJob, QuoteResult]:
    return StoreMessageQueue(
        noop,
        store=MemoryJobStore(),
        queue="quotes",
        workers=WORKERS,
        max_size=max_size,
        payload_codec=QuoteJobCodec(),
        result_codec=QuoteResultCodec(),
    )


async def engine_ops(items: int) -> float:
    """Enqueue plus dequeue operations per second of the queue."""
    queue = new_queue(items + 1)
    await queue.start()
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(items):
            await queue.submit(JOB, priority=Priority.NORMAL)
        while (await queue.stats()).completed < items:
            if loop.time() - began > DEADLINE:
                raise RuntimeError("the engine did not complete its items in time")
            await asyncio.sleep(0.001)
        return 2 * items / (loop.time() - began)
    finally:
        await queue.stop()


async def priority_queue_ops(items: int) -> float:
    """The same, through a bare asyncio.PriorityQueue."""
    queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
    done = 0
    finished = asyncio.Event()

    async def consume() -> None:
        nonlocal done
        while True:
            await queue.get()
            await noop(JOB)
            done += 1
            if done == items:
                finished.set()

    loop = asyncio.get_running_loop()
    consumers = [asyncio.create_task(consume()) for _ in range(WORKERS)]
    try:
        began = loop.time()
        for seq in range(items):
            await queue.put((-int(Priority.NORMAL), seq, f"{seq:032x}"))
        await asyncio.wait_for(finished.wait(), DEADLINE)
        return 2 * items / (loop.time() - began)
    finally:
        for consumer in consumers:
            consumer.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)


async def _time_us(call: Callable[[], Awaitable[object]], calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - began) / calls * 1e6


async def filled_servicer(pending: int) -> QuoteServicer:
    """The quote servicer over a queue holding `pending` PENDING messages."""
    queue = new_queue(pending + 1)
    for _ in range(pending):
        await queue.submit(JOB, priority=Priority.NORMAL)
    assert (await queue.stats()).pending == pending
    return QuoteServicer(queue)


async def get_stats_times(pending: int, calls: int) -> dict[str, float]:
    """Microseconds per GetStats call of the no-op servicer, and of the quote
    servicer with nothing and with `pending` messages pending: the best of
    REPEATS rounds (noise only slows), the three timed in turn in each round."""
    request = pb.GetStatsRequest()
    servicers = {
        "noop_get_stats_us": NoopQuoteServicer(),
        "get_stats_empty_us": await filled_servicer(0),
        "get_stats_loaded_us": await filled_servicer(pending),
    }
    gc.collect()
    best = dict.fromkeys(servicers, float("inf"))
    for _ in range(REPEATS):
        for name, servicer in servicers.items():
            # The servicers ignore their context, as GetStats needs none.
            elapsed = await _time_us(lambda s=servicer: s.GetStats(request, None), calls)  # type: ignore[misc]
            best[name] = min(best[name], elapsed)
    return best


async def main_async(options: argparse.Namespace) -> dict[str, float]:
    return {
        "engine_ops_per_s": await engine_ops(options.items),
        "priority_queue_ops_per_s": await priority_queue_ops(options.items),
        **await get_stats_times(options.pending, options.calls),
    }


def main() -> None:
    set_parent_death_signal()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--pending", type=int, required=True)
    parser.add_argument("--calls", type=int, required=True)
    options = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(options))), flush=True)


if __name__ == "__main__":
    main()
