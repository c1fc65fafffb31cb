"""Closed-loop unary runs, and comparisons that interleave reference and subjects.

The machine is shared and noisy, so a comparison never measures one side and
then the other: it runs rounds, each round measuring every variant once (in a
shuffled order), and reports per variant the median throughput over rounds and
the latency percentiles over every call of every round.

Each run also charges the server its CPU: the CPU seconds its process(es)
used from the start of the window until the work the window submitted is done
(a quote service's backlog drained), divided by the calls answered. Other
tenants of the machine slow a server's throughput but barely change the CPU
each call costs it, so that is the steadier of the two ratios.
"""

import asyncio
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import psutil  # type: ignore[import-untyped, unused-ignore]

from bench.context import Run
from bench.stats import median, ms, percentile
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.channels import PLAINTEXT, client_security, open_channel
from tools.launcher import Launched

#: A quote service's backlog must drain within this before the next run.
SETTLE_DEADLINE = 120.0


@dataclass(frozen=True)
class UnaryResult:
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    #: Server CPU per answered call, median over rounds.
    cpu_us: float | None
    calls: int
    errors: int


@dataclass(frozen=True)
class _Run:
    rate: float
    latencies: list[int]
    errors: int
    cpu_us: float | None


def _cpu_seconds(servers: Sequence[Launched]) -> float:
    total = 0.0
    for server in servers:
        times = psutil.Process(server.pid).cpu_times()
        total += times.user + times.system
    return total


async def run_unary(
    run: Run,
    servers: Sequence[Launched],
    method: str,
    concurrency: int,
    *,
    generators: int = 1,
    channels: int = 1,
) -> _Run:
    """One closed-loop run against servers[0]'s address (several processes may
    share it), split over `generators` processes started together."""
    chosen = run.loadgens[:generators]
    command = {
        "cmd": "unary",
        "target": servers[0].address,
        "security": run.client_security.get(servers[0].address),
        "method": method,
        "concurrency": max(1, concurrency // generators),
        "seconds": run.sizes.unary_seconds,
        "warmup": run.sizes.unary_warmup,
        "channels": channels,
    }
    for loadgen in chosen:
        await loadgen.send(json.dumps(command))
    for loadgen in chosen:
        _check(await loadgen.read_json(), loadgen)
    cpu_before = _cpu_seconds(servers)
    for loadgen in chosen:
        await loadgen.send('{"cmd": "go"}')
    answers = [_check(await lg.read_json(within=120), lg) for lg in chosen]
    await settle(servers[0].address, run.client_security.get(servers[0].address))
    cpu = _cpu_seconds(servers) - cpu_before
    calls = sum(answer["ok"] for answer in answers)
    return _Run(
        rate=sum(answer["ok"] / answer["seconds"] for answer in answers),
        latencies=[value for answer in answers for value in answer["latencies_us"]],
        errors=sum(answer["errors"] for answer in answers),
        cpu_us=cpu / calls * 1e6 if calls else None,
    )


def _check(answer: dict[str, Any], loadgen: Launched) -> dict[str, Any]:
    if "error" in answer:
        raise RuntimeError(f"{loadgen.name}: {answer['error']}")
    return answer


async def settle(address: str, security: Mapping[str, str] | None = None) -> None:
    """Wait until a quote service has no message pending or processing, so one
    run's backlog is not worked off during the next run (the no-op answers 0).
    security: client_security's arguments, for a server with TLS and tokens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_DEADLINE
    secured = client_security(**security) if security else PLAINTEXT
    async with open_channel(address, security=secured) as channel:
        stats = channel.unary_unary(
            "/quoteflow.quote.v1.QuoteService/GetStats",
            request_serializer=pb.GetStatsRequest.SerializeToString,
            response_deserializer=pb.GetStatsResponse.FromString,
        )
        while loop.time() < deadline:
            now = await stats(pb.GetStatsRequest(), timeout=10)
            if now.pending_count + now.processing_count == 0:
                return
            await asyncio.sleep(0.02)
    raise RuntimeError(f"the quote service at {address} did not drain its backlog")


async def messages_held(address: str) -> int:
    """Messages a quote service holds, in any state."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/quoteflow.quote.v1.QuoteService/GetStats",
            request_serializer=pb.GetStatsRequest.SerializeToString,
            response_deserializer=pb.GetStatsResponse.FromString,
        )
        s = await call(pb.GetStatsRequest(), timeout=30)
        return int(
            s.pending_count
            + s.processing_count
            + s.completed_count
            + s.failed_count
            + s.cancelled_count
            + s.awaiting_review_count
            + s.rejected_count
        )


async def compare(
    run: Run,
    variants: Mapping[str, Sequence[Launched]],
    method: str,
    concurrency: int,
    *,
    rounds: int,
    generators: int = 1,
    channels: int = 1,
) -> dict[str, UnaryResult]:
    """Measure every variant (label → its server processes) in each of `rounds`
    interleaved rounds."""
    labels = list(variants)
    runs: dict[str, list[_Run]] = {label: [] for label in labels}
    for number in range(rounds):
        # A fresh order each round (seeded, so runs are comparable): no variant
        # always follows the same one.
        for label in random.Random(number).sample(labels, len(labels)):
            address = variants[label][0].address
            await settle(address, run.client_security.get(address))
            runs[label].append(
                await run_unary(
                    run,
                    variants[label],
                    method,
                    concurrency,
                    generators=generators,
                    channels=channels,
                )
            )
    results = {}
    for label, measured in runs.items():
        latencies = [value for one in measured for value in one.latencies]
        cpu = [one.cpu_us for one in measured if one.cpu_us is not None]
        results[label] = UnaryResult(
            rps=median([one.rate for one in measured]),
            p50_ms=ms(percentile(latencies, 0.50)),
            p99_ms=ms(percentile(latencies, 0.99)),
            cpu_us=median(cpu),
            calls=len(latencies),
            errors=sum(one.errors for one in measured),
        )
    return results
