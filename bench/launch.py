"""Run a service's __main__ with an ecosystem lever applied, without touching its code.

    python -m bench.launch [--option NAME=VALUE ...] [--sqlite-synchronous NORMAL]
        [--profile FILE] MODULE [service flags ...]

--option overrides or adds a gRPC server option in
service_runtime.server's option table before the service builds its server
(for instance grpc.so_reuseport=1 to run several processes on one port).
--sqlite-synchronous changes the SQLite stores' synchronous pragma.
--profile samples the process with pyinstrument from start to exit and
writes a text report to FILE (the service exits on SIGTERM, after its drain).
"""

import argparse
import runpy
import sys
from collections.abc import Sequence
from typing import cast

from bench.procs import set_parent_death_signal


def _parse_option(text: str) -> tuple[str, int | str]:
    name, _, value = text.partition("=")
    if not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    # gRPC takes integer options as ints and the rest (optimization_target) as strings.
    return name, int(value) if value.lstrip("-").isdigit() else value


def override_server_options(overrides: Sequence[tuple[str, int | str]]) -> None:
    """Replace same-named options in the services' option table and add the rest."""
    from service_runtime import server

    names = {name for name, _ in overrides}
    kept = [(name, value) for name, value in server._SERVER_OPTIONS if name not in names]
    # The table is typed for its own integer options; an override may be a string
    # (grpc.optimization_target), which gRPC takes as well.
    server._SERVER_OPTIONS = cast(Sequence[tuple[str, int]], (*kept, *overrides))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--option", type=_parse_option, action="append", default=[], help="NAME=VALUE"
    )
    parser.add_argument(
        "--sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        help="the SQLite stores' synchronous pragma (the services use FULL)",
    )
    parser.add_argument("--profile", help="write a pyinstrument text report here at exit")
    parser.add_argument("module", help="the module to run as __main__, e.g. quote_svc")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the module's own flags")
    options = parser.parse_args(argv)
    set_parent_death_signal()

    if options.option:
        override_server_options(options.option)
    if options.sqlite_synchronous:
        from queues.storage_sqlite import SqliteStore

        # The store's keyword default, which service_runtime.storage relies on.
        defaults = SqliteStore.__init__.__kwdefaults__
        assert defaults is not None
        defaults["synchronous"] = options.sqlite_synchronous
    sys.argv = [options.module, *options.args]
    if options.profile is None:
        runpy.run_module(options.module, run_name="__main__", alter_sys=True)
        return

    from pyinstrument import Profiler

    # async_mode disabled: sample whatever the main thread runs, the event loop
    # included, so time is attributed to the code that burns CPU, not to awaits.
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        runpy.run_module(options.module, run_name="__main__", alter_sys=True)
    finally:
        profiler.stop()
        with open(options.profile, "w", encoding="utf-8") as report:
            report.write(profiler.output_text(unicode=True, color=False, show_all=False))
        if profiler.last_session is not None:
            # The raw samples, for analysis beyond the text report (bench.profiles).
            profiler.last_session.save(options.profile + ".pyisession")


if __name__ == "__main__":
    main()
