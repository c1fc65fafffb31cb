"""python -m bench [--smoke] [--out DIR] [--only ...] [--e2e-peers ...]: run the figures.

It writes results.json and the doc; --only runs some sections, --e2e-peers
some of figure 3's systems. Sections e2e-postgres and e2e-batch run only those
systems of figure 3 with its peers (e2e runs them all; asked for together,
they make one run of figure 3).

Without --out the results go where the repository keeps them, bench/results.json
and docs/benchmarks.md; with --out DIR, to DIR/results.json and DIR/benchmarks.md.
A section that fails is reported (its figures null, with the error as their
note) and the exit code is 1; every process the bench started is stopped
whatever happens.
"""

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import report
from bench.catalog import figure_names
from bench.context import Run
from bench.fig_console import figure_console
from bench.fig_e2e import SECTION_SYSTEMS, figure_e2e
from bench.fig_engine import figure_engine
from bench.fig_fairness import figure_fairness
from bench.fig_levers import figure_levers
from bench.fig_memory import figure_memory
from bench.fig_observability import figure_observability
from bench.fig_pg_stats import figure_pg_stats
from bench.fig_security import figure_security
from bench.fig_split import figure_split
from bench.fig_stalled import figure_stalled
from bench.fig_streams import figure_streams
from bench.fig_unary import figure_unary
from bench.machine import describe
from bench.procs import Processes
from bench.profiles import profile_servers
from bench.results import Figure
from bench.servers import Servers
from bench.sizes import FULL, SMOKE
from tools.launcher import Launched

REPO = Path(__file__).resolve().parent.parent
LOADGENS = 2
#: Nothing may run longer than this, whatever hangs (make bench must end).
FULL_DEADLINE = 30 * 60.0
SMOKE_DEADLINE = 120.0
SECTIONS = (
    "unary",
    "engine",
    "e2e",
    "streams",
    "memory",
    "pg-stats",
    "split",
    "console",
    "security",
    "stalled",
    "observability",
    "fairness",
    "profiles",
)
#: Sections that run part of figure 3 (not in a full run: e2e runs them).
E2E_PARTS = tuple(SECTION_SYSTEMS)


async def _unary_and_levers(run: Run) -> None:
    started = await figure_unary(run)
    try:
        await figure_levers(run, started)
    finally:
        await run.servers.stop(*started.values())


SECTION_RUNNERS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "unary": _unary_and_levers,
    "engine": figure_engine,
    "e2e": figure_e2e,
    "streams": figure_streams,
    "memory": figure_memory,
    "pg-stats": figure_pg_stats,
    "split": figure_split,
    "console": figure_console,
    "security": figure_security,
    "stalled": figure_stalled,
    "observability": figure_observability,
    "fairness": figure_fairness,
    "profiles": profile_servers,
}


def _merge_e2e(run: Run, sections: list[str]) -> list[str]:
    """The sections with figure 3's parts made one e2e at the first's place
    (run.e2e_systems their systems, or None when e2e itself is asked for)."""
    parts = [s for s in sections if s in E2E_PARTS]
    if not parts:
        return sections
    if "e2e" not in sections:
        run.e2e_systems = sorted({system for part in parts for system in SECTION_SYSTEMS[part]})
    merged: list[str] = []
    for section in sections:
        named = "e2e" if section in E2E_PARTS else section
        if named not in merged:
            merged.append(named)
    return merged


async def _run_sections(run: Run, sections: list[str]) -> list[str]:
    failures = []
    for section in _merge_e2e(run, sections):
        try:
            await SECTION_RUNNERS[section](run)
        except Exception as error:
            failures.append(f"{section}: {type(error).__name__}: {error}")
            run.say(f"section {section} failed:\n{traceback.format_exc()}")
    return failures


def _complete(run: Run, failures: list[str]) -> None:
    """A null figure, saying why, for every name a failed section did not write."""
    written = {f.name for f in run.figures}
    unknown = written - set(figure_names())
    if unknown:
        raise AssertionError(f"figures missing from bench.catalog: {sorted(unknown)}")
    why = "not measured: " + ("; ".join(failures) if failures else "section not run")
    for name in figure_names():
        if name not in written:
            run.add(Figure(name, None, "", note=why[:500]))
    order = {name: n for n, name in enumerate(figure_names())}
    run.figures.sort(key=lambda f: order[f.name])


async def bench(options: argparse.Namespace) -> int:
    sizes = SMOKE if options.smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="quoteflow-bench-"))
    (work / "logs").mkdir()
    machine = describe()
    started = time.monotonic()
    failures: list[str] = []
    try:
        async with Processes(REPO, work / "logs") as processes:
            loadgens: list[Launched] = [
                await processes.start(f"loadgen-{n}", ["-m", "bench.loadgen"], talk=True)
                for n in range(LOADGENS)
            ]
            run = Run(
                REPO, work, sizes, options.smoke, processes, Servers(processes, work), loadgens
            )
            run.e2e_peers = options.e2e_peers
            run.say(f"{'smoke' if options.smoke else 'full'} run; work in {work}")
            deadline = SMOKE_DEADLINE if options.smoke else FULL_DEADLINE
            try:
                async with asyncio.timeout(deadline):
                    failures = await _run_sections(run, options.only or list(SECTIONS))
            except TimeoutError:
                failures.append(f"the run passed its {deadline:g} s deadline")
        runtime = time.monotonic() - started
        machine["load_average_end"] = describe()["load_average"]
        _complete(run, failures)
        out = Path(options.out) if options.out else None
        json_path = out / "results.json" if out else REPO / "bench" / "results.json"
        md_path = out / "benchmarks.md" if out else REPO / "docs" / "benchmarks.md"
        report.write_json(run.figures, json_path)
        report.write_markdown(run, machine, runtime, md_path)
        run.say(f"wrote {json_path} and {md_path} in {runtime:.0f} s")
        if options.keep_work:
            # Everything the report is made of, to render it again (bench.report.rerender).
            report.write_run(run, machine, runtime, work / "run.json")
        for failure in failures:
            run.say(f"FAILED {failure}")
        return 1 if failures else 0
    finally:
        if options.keep_work:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--out", help="write results.json and benchmarks.md here instead")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        help=f"comma-separated of {(*SECTIONS, *E2E_PARTS)}",
    )
    parser.add_argument(
        "--e2e-peers",
        type=lambda text: text.split(","),
        help="comma-separated of figure 3's systems (sqlite,memory,sqlite-asyncio,postgres,"
        "postgres-2,sqlite-batch,arq,dramatiq,procrastinate); the others' figures are null, "
        "saying so",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep logs, data and profiles")
    options = parser.parse_args()
    unknown = set(options.only or ()) - {*SECTIONS, *E2E_PARTS}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}: choose of {(*SECTIONS, *E2E_PARTS)}")

    async def guarded() -> int:
        # SIGTERM (a CI timeout, say) cancels the run, so the processes are stopped.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await bench(options)

    code = 1
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        code = asyncio.run(guarded())
    sys.exit(code)


if __name__ == "__main__":
    main()
