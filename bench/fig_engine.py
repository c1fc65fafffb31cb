"""Figure 2 from the orchestrator's side: run bench.engine and turn its answer into figures."""

from bench.context import Run
from bench.results import Figure, Target

CONSTANT_TIME = Target("ratio", "<=", 1.5)
ENGINE_NAMES = ("engine.ops_per_s", "engine.get_stats_empty_us", "engine.get_stats_loaded_us")


async def figure_engine(run: Run) -> None:
    sizes = run.sizes
    run.say(f"figure 2: the engine in-process ({sizes.engine_pending:,} pending for GetStats)")
    child = await run.processes.start(
        "engine",
        [
            "-m",
            "bench.engine",
            "--items",
            str(sizes.engine_items),
            "--pending",
            str(sizes.engine_pending),
            "--calls",
            str(sizes.engine_calls),
        ],
        talk=True,
    )
    try:
        answer = await child.read_json(within=300)
    finally:
        await run.processes.stop(child)
    run.notes["engine"] = answer
    run.add(
        Figure(
            "engine.ops_per_s",
            answer["engine_ops_per_s"],
            "ops/s",
            answer["priority_queue_ops_per_s"],
            "a bare asyncio.PriorityQueue moving the same items",
            note="an enqueue and a dequeue per item; memory store, four workers, no-op processor",
            params={"items": sizes.engine_items},
        ),
        Figure(
            "engine.get_stats_empty_us",
            answer["get_stats_empty_us"],
            "µs/call",
            answer["noop_get_stats_us"],
            "the no-op servicer's GetStats (a precomputed response)",
            params={"pending": 0, "calls": sizes.engine_calls},
        ),
        Figure(
            "engine.get_stats_loaded_us",
            answer["get_stats_loaded_us"],
            "µs/call",
            answer["get_stats_empty_us"],
            "the same call with nothing pending",
            CONSTANT_TIME,
            params={"pending": sizes.engine_pending, "calls": sizes.engine_calls},
        ),
    )
