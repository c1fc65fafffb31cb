"""Quotes submitted through the load generator outside a timed round: to fill a
quote service (BatchSubmitQuotes) and to time its GetStats."""

import json
from typing import Any

from bench.context import Run

#: A fill's deadline per call of the load generator (its polling included).
DEADLINE = 900.0


async def ask(run: Run, command: dict[str, Any], *, go: bool = True) -> dict[str, Any]:
    """One command to the first load generator, through its "ready"/"go" when go."""
    loadgen = run.loadgens[0]
    await loadgen.send(json.dumps(command))
    if go:
        ready = await loadgen.read_json()
        if "error" in ready:
            raise RuntimeError(f"load generator: {ready['error']}")
        await loadgen.send('{"cmd": "go"}')
    answer = await loadgen.read_json(within=DEADLINE + 30)
    if "error" in answer:
        raise RuntimeError(f"load generator: {answer['error']}")
    return answer


async def fill(
    run: Run,
    target: str,
    count: int,
    *,
    batch: int,
    concurrency: int,
    wait: bool = True,
    chunk: int | None = None,
) -> float:
    """count quotes in BatchSubmitQuotes of batch items, chunk at a time (each
    chunk waited for until final, with wait); the seconds it took."""
    seconds = 0.0
    left = count
    while left > 0:
        size = min(chunk or count, left)
        command = {
            "cmd": "quotes",
            "target": target,
            "count": size,
            "batch": batch,
            "concurrency": concurrency,
            "deadline": DEADLINE,
            "wait": wait,
        }
        answer = await ask(run, command)
        if answer["errors"] or not answer["finished"]:
            raise RuntimeError(f"filling {target}: {answer}")
        if wait and answer["completed"] != size:
            raise RuntimeError(f"filling {target}: {answer['completed']} of {size} completed")
        seconds += float(answer["total_seconds"])
        left -= size
    return seconds


async def stats_latencies(run: Run, target: str, calls: int) -> dict[str, Any]:
    """GetStats one call after another: every latency (µs) and the last stats' counts."""
    return await ask(run, {"cmd": "stats", "target": target, "calls": calls}, go=False)
