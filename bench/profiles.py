"""Where the server's time goes: pyinstrument on the server side of figures 1 and 3.

Each profiled server runs under `bench.launch --profile` (pyinstrument sampling
the main thread, event loop included, every 0.5 ms, from start to exit) while a
load generator drives it; on SIGTERM it drains, exits and writes the samples.
The analysis divides the sampled time by the requests served, giving
microseconds per request for the functions that cost the most. gRPC's own
Cython code has no Python frames, so its time shows as the self time of the
asyncio callbacks that run it (Handle._run, Context.run); the event loop's wait
for I/O (selectors) is idle time. That needs asyncio's own loop, so profiled
servers run with `--event-loop asyncio` (see PROFILED_LOOP). Sampling slows
the server (roughly 1.5-2x), so the shares matter more than the absolute
microseconds.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import servers
from bench.context import Run
from bench.unary import messages_held, settle

TOP = 20
#: Profiled servers run on asyncio's own loop, whose Python frames show what the
#: loop runs and when it idles; uvloop (the services' default) runs the same
#: callbacks from C, where the sampler sees neither.
PROFILED_LOOP = ("--event-loop", "asyncio")
#: Seconds a profiled server gets after SIGTERM to drain and write its samples.
PROFILE_WRITE_GRACE = 120.0
_LOOP = ("run_forever", "asyncio/base_events.py")
_IDLE = ("select", "selectors.py")
#: The frames through which the loop runs callbacks; their own time is gRPC's
#: Cython (and the loop's), since Cython frames are invisible to the sampler.
_CALLBACKS = {("_run", "asyncio/events.py"), ("Context.run", "<built-in>"), ("run", "<built-in>")}
#: Frames that only carry others (or wait): never a row of the tables.
_PLUMBING_FILES = ("asyncio/base_events.py", "selectors.py", "<frozen importlib")
_PLUMBING_FUNCTIONS = {"epoll.poll", "_run_once"}


def _identity(frame: Any) -> tuple[str, str]:
    function = frame.function or "?"
    if frame.class_name and not function.startswith(frame.class_name):
        function = f"{frame.class_name}.{function}"
    return (function, frame.file_path_short or "?")


def _walk(frame: Any) -> Iterator[Any]:
    stack = [frame]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def _find(root: Any, identity: tuple[str, str]) -> Any | None:
    """The frame of that function holding the most time."""
    found = [node for node in _walk(root) if _matches(node, identity)]
    return max(found, key=lambda node: node.time, default=None)


def _matches(node: Any, identity: tuple[str, str]) -> bool:
    function, path = _identity(node)
    return function.endswith(identity[0]) and path.endswith(identity[1])


def _is_callback(node: Any) -> bool:
    return any(_matches(node, callback) for callback in _CALLBACKS)


def _cumulative(root: Any) -> dict[tuple[str, str], float]:
    """Seconds per function, counting a function once where it appears within
    itself; pyinstrument's synthetic [self] frames are left out."""
    totals: dict[tuple[str, str], float] = {}

    def visit(node: Any, active: frozenset[tuple[str, str]]) -> None:
        identity = _identity(node)
        if not node.is_synthetic and identity not in active:
            totals[identity] = totals.get(identity, 0.0) + node.time
            active = active | {identity}
        for child in node.children:
            visit(child, active)

    visit(root, frozenset())
    return totals


def _entries(root: Any) -> dict[tuple[str, str], float]:
    """Seconds per function the loop's callbacks run directly: what the loop spends
    its time on, coroutine by coroutine (the interceptor, a worker, a commit...)."""
    totals: dict[tuple[str, str], float] = {}
    for node in _walk(root):
        if not _is_callback(node):
            continue
        for child in node.children:
            if child.is_synthetic or _is_callback(child):
                continue
            identity = _identity(child)
            totals[identity] = totals.get(identity, 0.0) + child.time
    return totals


def _is_plumbing(identity: tuple[str, str]) -> bool:
    function, path = identity
    if function in _PLUMBING_FUNCTIONS or any(_matches_id(identity, c) for c in _CALLBACKS):
        return True
    return any(part in path for part in _PLUMBING_FILES)


def _matches_id(identity: tuple[str, str], pattern: tuple[str, str]) -> bool:
    return identity[0].endswith(pattern[0]) and identity[1].endswith(pattern[1])


def _rows(totals: dict[tuple[str, str], float], busy: float, per: float) -> list[dict[str, Any]]:
    ranked = sorted(
        ((identity, seconds) for identity, seconds in totals.items() if not _is_plumbing(identity)),
        key=lambda row: -row[1],
    )[:TOP]
    return [
        {
            "function": function,
            "file": path,
            "us_per_request": seconds * per,
            "share_of_busy": seconds / busy if busy else 0.0,
        }
        for (function, path), seconds in ranked
    ]


def analyse(session_file: Path, requests: int) -> dict[str, Any]:
    """Per request: the event loop's busy time, gRPC's share of it, what the
    loop's callbacks run (entries) and the costliest functions (cumulative)."""
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    session = Session.load(str(session_file))
    root = session.root_frame()
    assert root is not None
    # Only the serving loop: start-up (imports, recovery) is not per request.
    loop = _find(root, _LOOP) or root
    idle = sum(node.time for node in _walk(loop) if _matches(node, _IDLE))
    busy = loop.time - idle
    callback_self = sum(
        child.time
        for node in _walk(loop)
        if _is_callback(node)
        for child in node.children
        if child.is_synthetic
    )
    per = 1e6 / max(requests, 1)
    tree = ConsoleRenderer(unicode=False, processor_options={"filter_threshold": 0.02}).render(
        session
    )
    return {
        "requests": requests,
        "duration_s": loop.time,
        "busy_s": busy,
        "busy_us_per_request": busy * per,
        "idle_share": idle / loop.time if loop.time else 0.0,
        "callback_self_us_per_request": callback_self * per,
        "entries": _rows(_entries(loop), busy, per),
        "top": _rows(_cumulative(loop), busy, per),
        "tree": tree,
    }


async def _loadgen(run: Run, command: dict[str, Any]) -> dict[str, Any]:
    loadgen = run.loadgens[0]
    await loadgen.send(json.dumps(command))
    ready = await loadgen.read_json()
    if "error" in ready:
        raise RuntimeError(ready["error"])
    await loadgen.send('{"cmd": "go"}')
    answer = await loadgen.read_json(within=600)
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer


async def _profiled(run: Run, spec: servers.ServerSpec, command: dict[str, Any]) -> dict[str, Any]:
    out = run.work / f"profile-{spec.name}.txt"
    profiled = servers.ServerSpec(
        spec.name,
        spec.module,
        (*spec.args, *PROFILED_LOOP),
        ("--profile", str(out), *spec.launch),
        spec.log_level,
        store=spec.store,
    )
    (child,) = await run.servers.start_all(profiled)
    answer = await _loadgen(run, {**command, "target": child.address})
    if spec.module == "quote_svc":
        # Every submitted message processed too, so the profile holds whole requests.
        await settle(child.address)
        requests = await messages_held(child.address)
    else:
        requests = _noop_calls(answer)
    # SIGTERM drains the server; the launcher then writes the profile and exits.
    await run.processes.stop(child, grace=PROFILE_WRITE_GRACE)
    return {"answer_seconds": answer.get("seconds"), **analyse(Path(f"{out}.pyisession"), requests)}


def _noop_calls(answer: dict[str, Any]) -> int:
    # The warm-up's calls are not counted by the generator; the window's dominate.
    return int(answer["ok"])


async def profile_servers(run: Run) -> None:
    sizes = run.sizes
    unary = {
        "cmd": "unary",
        "method": "SubmitQuote",
        "concurrency": 64,
        "seconds": sizes.profile_seconds,
        "warmup": 0.0,
        "channels": 1,
    }
    results: dict[str, Any] = {}
    run.say("profiles: SubmitQuote at c=64 on the no-op")
    results["noop_submit"] = await _profiled(run, servers.noop("profile-noop"), unary)
    run.say("profiles: SubmitQuote at c=64 on the quote service (SQLite)")
    results["quote_submit"] = await _profiled(run, servers.quote("profile-quote"), unary)
    run.say(f"profiles: {sizes.profile_quotes:,} quotes end to end (SQLite)")
    results["quote_e2e"] = await _profiled(
        run,
        servers.quote("profile-e2e"),
        {"cmd": "quotes", "count": sizes.profile_quotes, "concurrency": 64, "deadline": 300.0},
    )
    run.notes["profiles"] = results
