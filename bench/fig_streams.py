"""Figure 4: WatchOrder streaming, on the real processor (with a real quote service,
both on SQLite, pricing by the no-op processor) and on the no-op ProcessorService.

- One stream's events per second: an order is filled with proposals through
  the real path (SubmitProposal → quote service → event), then completed; one
  WatchOrder from its first event replays the whole log as fast as the server
  sends it. That is the stream's delivery rate, not the pricing pipeline's; the
  no-op streams as many precomputed events of the same size. A watcher open
  while the order fills gives the live rate, which the pipeline bounds.
- Idle streams: stream-client processes open N WatchOrder streams, each on an
  order of its own, 100 to a connection. RSS per stream is (RSS of the server
  process with N streams - RSS before any) / N.
- Delivery latency at a fixed event rate with those N streams open: proposals
  at 200 a second, spread round-robin over the N orders, so each event reaches
  one watcher. Delivery is the event's created_at (stamped by the processor as
  it appends the event, before its commit) to receipt; end-to-end is the
  SubmitProposal send to receipt, which adds the acceptance and the pricing.
"""

import asyncio
import json
import math
import uuid
from typing import Any

import grpc
import grpc.aio
import psutil  # type: ignore[import-untyped, unused-ignore]

from bench import servers
from bench.context import Run
from bench.results import Figure, Target
from bench.sizes import FULL
from bench.stats import median, ms, percentile
from quoteflow.processor.v1 import processor_service_pb2 as ppb
from tools.launcher import Launched

RSS_TARGET = Target("value", "<=", 1024.0)
DELIVERY_TARGET = Target("value", "<=", 50.0)
FILL_CONCURRENCY = 32
#: Streams must all be registered by the server within this many seconds.
OPEN_DEADLINE = 180.0
MIB = 1024 * 1024
#: Figures are named by the full run's stream counts (a smoke run opens fewer;
#: its params say how many).
NAMED_COUNTS = FULL.streams
_PER_COUNT = (
    "rss_per_stream_kib",
    "rss_mib",
    "delivery_p50_ms",
    "delivery_p99_ms",
    "end_to_end_p99_ms",
)
STREAM_NAMES = (
    "stream.replay.events_per_s",
    "stream.live.events_per_s",
    *(f"stream.n{count}.{stat}" for count in NAMED_COUNTS for stat in _PER_COUNT),
)


async def _ask(child: Launched, command: dict[str, Any], within: float = 120.0) -> dict[str, Any]:
    await child.send(json.dumps(command))
    answer = await child.read_json(within=within)
    if "error" in answer:
        raise RuntimeError(f"{child.name}: {answer['error']}")
    return answer


async def _stats(address: str) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/quoteflow.processor.v1.ProcessorService/GetStats",
            request_serializer=ppb.GetStatsRequest.SerializeToString,
            response_deserializer=ppb.GetStatsResponse.FromString,
        )
        return await call(ppb.GetStatsRequest(), timeout=30)


async def _wait_watchers(address: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OPEN_DEADLINE
    while (await _stats(address)).watchers_count < count:
        if loop.time() > deadline:
            raise RuntimeError(f"{address} did not register {count} streams in time")
        await asyncio.sleep(0.2)


async def _complete(address: str, order: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(
            "/quoteflow.processor.v1.ProcessorService/CompleteOrder",
            request_serializer=ppb.CompleteOrderRequest.SerializeToString,
            response_deserializer=ppb.CompleteOrderResponse.FromString,
        )
        await call(ppb.CompleteOrderRequest(order_req_id=order), timeout=60)


def _rss_mib(child: Launched) -> float:
    return float(psutil.Process(child.pid).memory_info().rss) / MIB


async def _replay_rates(
    run: Run, client: Launched, processor: str, noop: str
) -> tuple[float, float, float]:
    """(live events/s while filling, replay events/s, no-op burst events/s)."""
    events = run.sizes.replay_events
    prefix = f"replay-{uuid.uuid4().hex[:8]}-"
    order = f"{prefix}0"
    await _ask(client, {"cmd": "follow", "target": processor, "order": order})
    await _wait_watchers(processor, 1)
    filled = await _ask(
        run.loadgens[0],
        {
            "cmd": "proposals",
            "target": processor,
            "prefix": prefix,
            "orders": 1,
            "count": events,
            "concurrency": FILL_CONCURRENCY,
        },
        within=600,
    )
    if filled["errors"]:
        raise RuntimeError(f"{filled['errors']} proposals failed while filling the order")
    await _complete(processor, order)
    live = await _ask(client, {"cmd": "followed", "timeout": 120})
    replays: list[float] = []
    bursts: list[float] = []
    for _ in range(run.sizes.rounds):
        real = await _ask(client, {"cmd": "replay", "target": processor, "order": order})
        bare = await _ask(client, {"cmd": "replay", "target": noop, "order": f"burst-{events}"})
        replays.append(real["events"] / real["seconds"])
        bursts.append(bare["events"] / bare["seconds"])
    live_rate = (live["events"] - 1) / live["seconds"] if live["seconds"] else 0.0
    return live_rate, median(replays) or 0.0, median(bursts) or 0.0


class StreamSet:
    """N idle streams to one server, spread over the stream-client processes."""

    def __init__(self, run: Run, clients: list[Launched], server: Launched) -> None:
        self._run = run
        self._clients = clients
        self._server = server
        self._prefix = f"idle-{uuid.uuid4().hex[:8]}-"
        self._held = [0] * len(clients)
        #: Streams that failed while opening and were opened again.
        self.reopened = 0

    async def grow_to(self, count: int) -> None:
        """Open streams until `count` are open; one client at a time, since the
        server cancels streams it is handed faster than it can take them up."""
        per_client = self._run.sizes.streams_per_client
        for index, client in enumerate(self._clients):
            wanted = min(max(count - index * per_client, 0), per_client)
            more = wanted - self._held[index]
            if more <= 0:
                continue
            answer = await _ask(
                client,
                {
                    "cmd": "open",
                    "target": self._server.address,
                    "prefix": self._prefix,
                    "start": index * per_client + self._held[index],
                    "count": more,
                    "per_channel": self._run.sizes.streams_per_channel,
                },
            )
            self._held[index] = wanted
            self.reopened += answer["reopened"]
        await _wait_watchers(self._server.address, count)

    async def latencies(self, count: int) -> dict[str, Any]:
        """Proposals at the event rate over the first `count` orders, and what arrived."""
        sizes = self._run.sizes
        await asyncio.gather(*(_ask(c, {"cmd": "reset"}) for c in self._clients))
        sent = await _ask(
            self._run.loadgens[0],
            {
                "cmd": "proposals",
                "target": self._server.address,
                "prefix": self._prefix,
                "orders": count,
                "rate": sizes.event_rate,
                "seconds": sizes.rate_seconds,
            },
            within=sizes.rate_seconds + 120,
        )
        await asyncio.sleep(sizes.settle_seconds)  # the last events' pricing and delivery
        reports = await asyncio.gather(*(_ask(c, {"cmd": "report"}) for c in self._clients))
        delivery = [v for r in reports for v in r["delivery_us"]]
        end_to_end = [v for r in reports for v in r["end_to_end_us"]]
        return {
            "sent": sent["ok"],
            "send_errors": sent["errors"],
            "late_sends": sent["late"],
            "received": len(delivery),
            "stream_errors": sum(r["errors"] for r in reports),
            "delivery_p50_ms": ms(percentile(delivery, 0.50)),
            "delivery_p99_ms": ms(percentile(delivery, 0.99)),
            "end_to_end_p50_ms": ms(percentile(end_to_end, 0.50)),
            "end_to_end_p99_ms": ms(percentile(end_to_end, 0.99)),
        }

    async def close(self) -> None:
        await asyncio.gather(*(_ask(c, {"cmd": "close"}) for c in self._clients))
        self._held = [0] * len(self._clients)


async def _idle_streams(
    run: Run, clients: list[Launched], server: Launched
) -> dict[int, dict[str, Any]]:
    """Per stream count: RSS (MiB) before and with the streams, and the latencies."""
    streams = StreamSet(run, clients, server)
    before = _rss_mib(server)
    measured: dict[int, dict[str, Any]] = {}
    try:
        for count in run.sizes.streams:
            run.say(f"figure 4: {count:,} idle streams to {server.name}")
            await streams.grow_to(count)
            await asyncio.sleep(run.sizes.settle_seconds)
            rss = _rss_mib(server)
            run.say(
                f"figure 4: {server.name} RSS {rss:.0f} MiB; events at {run.sizes.event_rate:g}/s"
            )
            measured[count] = {
                "rss_before_mib": before,
                "rss_mib": rss,
                "reopened": streams.reopened,
                **await streams.latencies(count),
            }
    finally:
        await streams.close()
    return measured


async def figure_streams(run: Run) -> None:
    sizes = run.sizes
    run.say("figure 4: starting the quote service, the processor and the no-op")
    quote_service, noop = await run.servers.start_all(
        servers.quote("stream-quote"), servers.noop("stream-noop")
    )
    # Once the quote service serves: a processor started before it would begin
    # with its channel to it in reconnect backoff.
    (processor,) = await run.servers.start_all(
        servers.processor("processor", quote_service.address)
    )
    client_count = math.ceil(max(sizes.streams) / sizes.streams_per_client)
    clients = [
        await run.processes.start(f"stream-client-{n}", ["-m", "bench.stream_client"], talk=True)
        for n in range(client_count)
    ]
    try:
        run.say(f"figure 4: one stream, {sizes.replay_events:,} events")
        live, replay, burst = await _replay_rates(run, clients[0], processor.address, noop.address)
        real = await _idle_streams(run, clients, processor)
        bare = await _idle_streams(run, clients, noop)
    finally:
        for client in clients:
            await run.processes.stop(client)
        await run.servers.stop(processor, quote_service, noop)
    run.notes["streams"] = {"processor": real, "noop": bare, "clients": client_count}
    _add_figures(run, live, replay, burst, real, bare)


def _add_figures(
    run: Run,
    live: float,
    replay: float,
    burst: float,
    real: dict[int, dict[str, Any]],
    bare: dict[int, dict[str, Any]],
) -> None:
    sizes = run.sizes
    noop_label = "the no-op ProcessorService (same server, interceptor, log level)"
    run.add(
        Figure(
            "stream.replay.events_per_s",
            replay,
            "events/s",
            burst,
            noop_label,
            params={"events": sizes.replay_events},
        ),
        Figure(
            "stream.live.events_per_s",
            live,
            "events/s",
            replay,
            "the same stream replaying the finished log",
            note="bound by the pricing pipeline (SubmitProposal at concurrency "
            f"{FILL_CONCURRENCY} through the quote service), not by the stream",
            params={"events": sizes.replay_events},
        ),
    )
    for named, count in zip(NAMED_COUNTS, sizes.streams, strict=True):
        large = named == max(NAMED_COUNTS)
        name = f"stream.n{named}"
        got, ref = real[count], bare[count]
        params = {"streams": count, "event_rate": sizes.event_rate, "events": got["sent"]}
        per_stream = (got["rss_mib"] - got["rss_before_mib"]) * 1024 / count
        ref_per_stream = (ref["rss_mib"] - ref["rss_before_mib"]) * 1024 / count
        delivery_target = None if large else DELIVERY_TARGET
        run.add(
            Figure(
                f"{name}.rss_per_stream_kib",
                per_stream,
                "KiB",
                ref_per_stream,
                noop_label,
                params=params,
            ),
            Figure(
                f"{name}.rss_mib",
                got["rss_mib"],
                "MiB",
                ref["rss_mib"],
                noop_label,
                RSS_TARGET if large else None,
                params=params,
            ),
            Figure(
                f"{name}.delivery_p50_ms",
                got["delivery_p50_ms"],
                "ms",
                ref["delivery_p50_ms"],
                noop_label,
                params=params,
            ),
            Figure(
                f"{name}.delivery_p99_ms",
                got["delivery_p99_ms"],
                "ms",
                ref["delivery_p99_ms"],
                noop_label,
                delivery_target,
                _missing(got),
                params,
            ),
            Figure(
                f"{name}.end_to_end_p99_ms",
                got["end_to_end_p99_ms"],
                "ms",
                ref["end_to_end_p99_ms"],
                noop_label,
                note="SubmitProposal sent to event received: adds acceptance and pricing",
                params=params,
            ),
        )


def _missing(got: dict[str, Any]) -> str:
    lost = got["sent"] - got["received"]
    return f"{lost} of {got['sent']} events not received in time" if lost else ""
