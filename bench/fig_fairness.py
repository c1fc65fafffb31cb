"""Figure 13: fairness keys, aging, and what they cost.

The quote service on SQLite (its default), four workers, pricing by the no-op
processor, in processes of their own; the bench is the client.

- Tenant isolation: key A's burst (fairness_burst messages, in batches) then
  key B's 10 messages; the p99 of B's waits (first claim less acceptance),
  against B's p99 with A absent (a fresh service). Also measured with B
  submitted under A's key, as a queue without fairness keys serves it.
- LOW under saturation: with --aging-interval AGING_INTERVAL and two workers,
  HIGH kept queued deeper than the workers drain while a LOW message is
  submitted every quarter interval; the worst LOW wait, in aging intervals.
- Cost: end to end (fairness_count quotes at concurrency 64, all COMPLETED)
  with a key per quote from 16 tenants, against the same with none.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import grpc
from google.protobuf.duration_pb2 import Duration

from bench import servers
from bench.context import Run
from bench.results import Figure, Target
from bench.stats import median, percentile
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

FAIRNESS_NAMES = (
    "fairness.isolation.b_p99_wait_ms",
    "fairness.isolation.no_keys.b_p99_wait_ms",
    "fairness.aging.low_worst_wait_intervals",
    "fairness.cost.e2e.jobs_per_s",
)
AGING_INTERVAL = 1.0
FEW = 10
TENANTS = 16
CONCURRENCY = 64
BATCH = 1000
ISOLATION_TARGET = Target("ratio", "<=", 3.0)
AGING_TARGET = Target("value", "<=", 3.0)
COST_TARGET = Target("ratio", ">=", 0.9)
Stub = pb_grpc.QuoteServiceStub


def _submission(name: str) -> pb.Submission:
    return pb.Submission(applicant_name=name, address="1 Bench Road", coverage_amount=250_000)


async def figure_fairness(run: Run) -> None:
    run.say("figure 13: fairness keys, aging, and their cost")
    await _isolation(run)
    await _aging(run)
    await _cost(run)


async def _with_service(
    run: Run, name: str, args: Sequence[str], work: Callable[[Stub], Awaitable[float | None]]
) -> float | None:
    (service,) = await run.servers.start_all(servers.quote(name, args=("--workers", "4", *args)))
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
            return await work(Stub(channel))
    finally:
        await run.servers.stop(service)


async def _waits(stub: Stub, ids: list[str]) -> list[float]:
    """Each message's wait, once every one of them is COMPLETED."""
    waits = []
    for message_id in ids:
        async for answer in stub.WatchMessage(pb.WatchMessageRequest(id=message_id)):
            message = answer.message
        started = message.started_at.ToNanoseconds() / 1e9
        waits.append(started - message.created_at.ToNanoseconds() / 1e9)
    return waits


async def _burst(stub: Stub, key: str, count: int) -> None:
    await _batches(
        stub,
        [
            pb.SubmitQuoteRequest(submission=_submission(f"a{n}"), fairness_key=key)
            for n in range(count)
        ],
    )


async def _batches(stub: Stub, requests: list[pb.SubmitQuoteRequest]) -> None:
    for start in range(0, len(requests), BATCH):
        chunk = requests[start : start + BATCH]
        await stub.BatchSubmitQuotes(pb.BatchSubmitQuotesRequest(requests=chunk))


def _few_p99(b_key: str, a_count: int) -> Callable[[Stub], Awaitable[float | None]]:
    async def measure(stub: Stub) -> float | None:
        if a_count:
            await _burst(stub, "A", a_count)
        ids = []
        for n in range(FEW):
            request = pb.SubmitQuoteRequest(submission=_submission(f"b{n}"), fairness_key=b_key)
            ids.append((await stub.SubmitQuote(request)).message.id)
        p99 = percentile(await _waits(stub, ids), 0.99)
        return None if p99 is None else p99 * 1000

    return measure


async def _isolation(run: Run) -> None:
    count = run.sizes.fairness_burst
    rounds = run.sizes.rounds
    measured: dict[str, list[float | None]] = {"alone": [], "keys": [], "no_keys": []}
    for number in range(rounds):
        run.say(f"figure 13: tenant isolation, round {number + 1}")
        measured["alone"].append(await _with_service(run, "fair-alone", (), _few_p99("B", 0)))
        measured["keys"].append(await _with_service(run, "fair-keys", (), _few_p99("B", count)))
        measured["no_keys"].append(await _with_service(run, "fair-none", (), _few_p99("A", count)))
    alone = _median(measured["alone"])
    label = f"key B's {FEW} with key A absent (a fresh service)"
    params = {"burst": count, "few": FEW, "workers": 4, "rounds": rounds}
    run.add(
        Figure(
            "fairness.isolation.b_p99_wait_ms", _median(measured["keys"]), "ms", alone, label,
            ISOLATION_TARGET, params=params,
        ),
        Figure(
            "fairness.isolation.no_keys.b_p99_wait_ms", _median(measured["no_keys"]), "ms",
            alone, label, note="B under A's key: the queue as it served before keys",
            params=params,
        ),
    )  # fmt: skip


async def _aging(run: Run) -> None:
    run.say("figure 13: LOW under saturating HIGH")
    seconds = run.sizes.fairness_aging_seconds
    args = ("--aging-interval", str(AGING_INTERVAL), "--workers", "2")

    async def measure(stub: Stub) -> float | None:
        stop = asyncio.Event()

        async def saturate() -> None:
            # Keep HIGH queued well beyond what two workers drain meanwhile.
            while not stop.is_set():
                stats = await stub.GetStats(pb.GetStatsRequest())
                if stats.pending_count < 2000:
                    await _burst_high(stub, 500)
                await asyncio.sleep(0.05)

        flood = asyncio.create_task(saturate())
        await _burst_high(stub, 2000)
        lows = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            low = pb.SubmitQuoteRequest(submission=_submission("low"), priority=pb.PRIORITY_LOW)
            lows.append((await stub.SubmitQuote(low)).message.id)
            await asyncio.sleep(AGING_INTERVAL / 4)
        waits = await _waits(stub, lows)
        stop.set()
        await flood
        return max(waits) / AGING_INTERVAL

    worst = await _with_service(run, "fair-aging", args, measure)
    run.add(
        Figure(
            "fairness.aging.low_worst_wait_intervals", worst, "intervals", target=AGING_TARGET,
            note="aged HIGH is URGENT at one interval; LOW at three, and goes first",
            params={"aging_interval_s": AGING_INTERVAL, "seconds": seconds, "workers": 2},
        )
    )  # fmt: skip


async def _burst_high(stub: Stub, count: int) -> None:
    high = pb.SubmitQuoteRequest(submission=_submission("high"), priority=pb.PRIORITY_HIGH)
    await _batches(stub, [high] * count)


def _end_to_end(keyed: bool, count: int) -> Callable[[Stub], Awaitable[float | None]]:
    async def measure(stub: Stub) -> float | None:
        started = time.monotonic()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def caller() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                key = f"tenant-{n % TENANTS}" if keyed else ""
                request = pb.SubmitQuoteRequest(submission=_submission(f"q{n}"), fairness_key=key)
                await stub.SubmitQuote(request)

        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        watching = pb.WatchStatsRequest(min_interval=Duration(nanos=100_000_000))
        async for answer in stub.WatchStats(watching):
            if answer.stats.completed_count >= count:
                break
        return count / (time.monotonic() - started)

    return measure


async def _cost(run: Run) -> None:
    count = run.sizes.e2e_count
    rates: dict[bool, list[float | None]] = {True: [], False: []}
    for number in range(run.sizes.e2e_rounds):
        for keyed in (number % 2 == 0, number % 2 != 0):
            run.say(f"figure 13: end to end, {'keys' if keyed else 'none'}, round {number + 1}")
            name = "fair-e2e-keys" if keyed else "fair-e2e-none"
            rates[keyed].append(await _with_service(run, name, (), _end_to_end(keyed, count)))
    run.add(
        Figure(
            "fairness.cost.e2e.jobs_per_s", _median(rates[True]), "jobs/s", _median(rates[False]),
            "the same quotes with no fairness key", COST_TARGET,
            params={"count": count, "tenants": TENANTS, "concurrency": CONCURRENCY},
        )
    )  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return median([value for value in values if value is not None])
