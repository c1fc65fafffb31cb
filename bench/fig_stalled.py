"""Figure 11: a watcher that never reads does not make the processor buffer.

One WatchOrder stream is opened by a client that never reads it, and
stalled_events proposals are appended to its order through the real path
(SubmitProposal, priced by the quote service). The processor's RSS growth
over the fill is measured against the same fill of another order with no
watcher, in the same processor: what the stalled stream costs is the
difference. HTTP/2 flow control stops the sending once the client's window
is full, and WatchOrder reads the log from its cursor as it sends, so the
difference stays near a window's worth however many events there are.
"""

import uuid

from bench import servers
from bench.context import Run
from bench.fig_streams import FILL_CONCURRENCY, _ask, _rss_mib, _wait_watchers
from bench.results import Figure, Target
from tools.launcher import Launched

STALLED_NAMES = ("stalled.rss_growth_mib", "stalled.extra_mib")
#: What one stalled stream may cost the processor, whatever the events.
EXTRA_TARGET = Target("value", "<=", 16.0)


async def _fill(run: Run, client: Launched, processor: Launched, order_prefix: str) -> float:
    """RSS growth of processor, MiB, while stalled_events proposals go to one order."""
    before = _rss_mib(processor)
    filled = await _ask(
        client,
        {
            "cmd": "proposals",
            "target": processor.address,
            "prefix": order_prefix,
            "orders": 1,
            "count": run.sizes.stalled_events,
            "concurrency": FILL_CONCURRENCY,
        },
        within=1800,
    )
    if filled["errors"]:
        raise RuntimeError(f"{filled['errors']} proposals failed while filling the order")
    return _rss_mib(processor) - before


async def figure_stalled(run: Run) -> None:
    events = run.sizes.stalled_events
    run.say(f"figure 11: one watcher that never reads, {events:,} events")
    (quote_service,) = await run.servers.start_all(servers.quote("stalled-quote"))
    (processor,) = await run.servers.start_all(
        servers.processor("stalled-processor", quote_service.address)
    )
    client = await run.processes.start("stalled-client", ["-m", "bench.stream_client"], talk=True)
    loadgen = run.loadgens[0]
    try:
        tag = uuid.uuid4().hex[:8]
        without = await _fill(run, loadgen, processor, f"unwatched-{tag}-")
        stalled_order = f"stalled-{tag}-0"
        await _ask(client, {"cmd": "stall", "target": processor.address, "order": stalled_order})
        await _wait_watchers(processor.address, 1)
        with_stalled = await _fill(run, loadgen, processor, f"stalled-{tag}-")
        await _ask(client, {"cmd": "close"})
    finally:
        await run.processes.stop(client)
        await run.servers.stop(processor, quote_service)
    params = {"events": events, "store": "sqlite"}
    run.add(
        Figure(
            "stalled.rss_growth_mib", round(with_stalled, 1), "MiB", round(without, 1),
            "the same fill of an order nobody watches, same processor", params=params,
        ),
        Figure(
            "stalled.extra_mib", round(with_stalled - without, 1), "MiB",
            target=EXTRA_TARGET, params=params,
        ),
    )  # fmt: skip
