"""The servers a bench runs, each a process of its own started through bench.launch.

Every server, the no-op ceiling included, runs the same way: `python -m
bench.launch [levers] MODULE --port P --log-level L ...`, where bench.launch
runs MODULE's __main__ in the same process (and applies a lever only when one
is asked for), so the reference and the subject differ only in the servicer.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import Processes, free_port
from tools.launcher import Launched

#: The quote service as the bench runs it: pricing by the no-op processor, and a
#: bound (max_size) no figure reaches, since arq's queue has none either.
QUOTE_ARGS = ("--processor", "bench.noop_processor:price", "--max-size", "1000000")


@dataclass(frozen=True)
class ServerSpec:
    name: str
    module: str
    args: tuple[str, ...] = ()
    #: bench.launch flags: --option NAME=VALUE, --profile FILE ...
    launch: tuple[str, ...] = ()
    log_level: str = "WARNING"
    #: A fixed port (several processes sharing one with SO_REUSEPORT); else a free one.
    port: int | None = None
    store: str = "sqlite"
    #: With TLS on, the plaintext health port (--health-port) start() waits on.
    health_port: int | None = None
    #: Added to the process's environment (OTEL_* for tracing, say).
    env: tuple[tuple[str, str], ...] = ()


def noop(name: str = "noop", **options: Any) -> ServerSpec:
    return ServerSpec(name=name, module="bench.noop_server", **options)


def quote(name: str = "quote", *, args: Sequence[str] = (), **options: Any) -> ServerSpec:
    return ServerSpec(name=name, module="quote_svc", args=(*QUOTE_ARGS, *args), **options)


#: The processor as the bench runs it: its bounds out of the figures' way, since
#: the replay fills one order with 2,000 proposals and the idle streams watch up
#: to 10,000 orders that have no event yet.
PROCESSOR_ARGS = ("--max-proposals-per-order", "1000000", "--max-awaited-orders", "1000000")


def processor(name: str, quote_address: str, **options: Any) -> ServerSpec:
    return ServerSpec(
        name=name,
        module="processor_svc",
        args=("--quote-address", quote_address, *PROCESSOR_ARGS),
        **options,
    )


class Servers:
    """Starts servers (concurrently when several are asked for) in data dirs of their own."""

    def __init__(self, processes: Processes, work: Path) -> None:
        self._processes = processes
        self._work = work

    async def start(self, spec: ServerSpec) -> Launched:
        port = spec.port or free_port()
        child = await self._processes.start(spec.name, self._argv(spec, port), env=dict(spec.env))
        await child.serving(f"127.0.0.1:{spec.health_port or port}")
        # Its calls are made on its own port, whichever answered health.
        child.address = f"127.0.0.1:{port}"
        return child

    async def start_worker(self, spec: ServerSpec) -> Launched:
        """Start a process that serves no port (a quote worker, `--api false`);
        the caller waits for it to work, as only it knows what that logs."""
        return await self._processes.start(
            spec.name, self._argv(spec, free_port()), env=dict(spec.env)
        )

    def _argv(self, spec: ServerSpec, port: int) -> list[str]:
        data_dir = self._work / "data" / f"{spec.name}-{port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        return [
            "-m",
            "bench.launch",
            *spec.launch,
            spec.module,
            "--port",
            str(port),
            "--log-level",
            spec.log_level,
            "--store",
            spec.store,
            "--data-dir",
            str(data_dir),
            # No /metrics unless the figure asks (its args come after, and win).
            "--metrics-port",
            "0",
            *spec.args,
        ]

    async def start_all(self, *specs: ServerSpec) -> list[Launched]:
        return list(await asyncio.gather(*(self.start(spec) for spec in specs)))

    async def stop(self, *children: Launched) -> None:
        await asyncio.gather(*(self._processes.stop(child) for child in children))
