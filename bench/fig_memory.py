"""Figure 6: the quote service's memory after many quotes against after few.

A fresh quote service (no-op pricing, 4 workers, store sqlite) completes
memory_reference_quotes quotes, then RSS is read
(VmRSS in /proc/<pid>/status) after settle_seconds; it goes on to
memory_quotes completed in all, and RSS is read again. The quotes go in
BatchSubmitQuotes of FILL_BATCH from FILL_CALLERS callers, CHUNK at a time,
each chunk completed before the next, so the backlog never passes a chunk and
what is measured is what the service keeps of finished quotes (they are kept
for the retention period, a day by default: all of them here), not a backlog.

Store postgres is not in the figure: its 4 workers complete about 240 no-op
quotes a second here (figure 3), so 200,000 would take some 14 minutes, and
its finished jobs are rows of the database rather than objects of the process.
_store_round still runs it (STORES) for a look by hand.
"""

import asyncio
from pathlib import Path
from typing import Any

from bench import servers
from bench.context import Run
from bench.pg_peer import fresh_database
from bench.quote_load import fill
from bench.results import Figure, Target
from tools.launcher import Launched

MEMORY_TARGET = Target("ratio", "<=", 1.5)
STORES = ("sqlite",)
MEMORY_NAMES = tuple(f"memory.{store}.rss_mib" for store in STORES)
FILL_BATCH = 100
FILL_CALLERS = 8
CHUNK = 10_000


def rss_mib(pid: int) -> float:
    """VmRSS of pid, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _measure(run: Run, service: Launched) -> dict[str, Any]:
    sizes = run.sizes
    reference, total = sizes.memory_reference_quotes, sizes.memory_quotes
    before = rss_mib(service.pid)

    async def completed(count: int) -> float:
        return await fill(
            run, service.address, count, batch=FILL_BATCH, concurrency=FILL_CALLERS, chunk=CHUNK
        )

    first = await completed(reference)
    await asyncio.sleep(sizes.settle_seconds)
    at_reference = rss_mib(service.pid)
    rest = await completed(total - reference)
    await asyncio.sleep(sizes.settle_seconds)
    return {
        "rss_start_mib": round(before, 1),
        "rss_reference_mib": round(at_reference, 1),
        "rss_mib": round(rss_mib(service.pid), 1),
        "seconds": round(first + rest, 2),
        "quotes_per_s": round(total / (first + rest), 1),
    }


async def _store_round(run: Run, store: str) -> dict[str, Any]:
    if store == "sqlite":
        (service,) = await run.servers.start_all(servers.quote("memory-sqlite"))
        try:
            return await _measure(run, service)
        finally:
            await run.servers.stop(service)
    async with fresh_database("bench_quote", procrastinate=False) as database:
        if database.url is None:
            return {"skipped": database.found}
        spec = servers.quote(
            "memory-postgres", store="postgres", args=("--database-url", database.url)
        )
        (service,) = await run.servers.start_all(spec)
        try:
            return await _measure(run, service)
        finally:
            await run.servers.stop(service)


async def figure_memory(run: Run) -> None:
    sizes = run.sizes
    notes: dict[str, Any] = {}
    run.notes["memory"] = notes
    for store in STORES:
        run.say(f"figure 6: RSS of the quote service ({store}) over {sizes.memory_quotes:,} quotes")
        notes[store] = got = await _store_round(run, store)
        params = {
            "quotes": sizes.memory_quotes,
            "reference_quotes": sizes.memory_reference_quotes,
            "batch": FILL_BATCH,
            "callers": FILL_CALLERS,
            "chunk": CHUNK,
            "store": store,
        }
        skipped = got.get("skipped")
        run.add(
            Figure(
                f"memory.{store}.rss_mib",
                None if skipped else got["rss_mib"],
                "MiB",
                None if skipped else got["rss_reference_mib"],
                f"the same service after {sizes.memory_reference_quotes:,} quotes",
                MEMORY_TARGET,
                skipped
                or f"VmRSS after {sizes.memory_quotes:,} completed no-op quotes, all kept "
                "(retention a day)",
                params,
            )
        )
