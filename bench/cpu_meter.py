"""The CPU a system spent on a round: its processes, its Redis, its PostgreSQL backends.

Figure 3 charges every peer with all the CPU its system used between the load
generator's "go" and its answer: the client (the load generator process), the
server or workers (each process with its children), and the broker or
database where it is a process of this machine:

- Redis reports its own CPU (INFO cpu), so that part is exact for a
  redis-server the bench started and server-wide for a shared one.
- PostgreSQL is shared by everything on this machine, so only the backends
  serving the round's database are charged: they are the postmaster's children
  whose process title names that database, sampled while the round runs (a
  backend that exits is charged up to its last sample). The server's own
  processes (WAL writer, checkpointer, ...) serve every database and are left out.
"""

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

#: How often the PostgreSQL backends are sampled while a round runs.
SAMPLE_INTERVAL = 0.1


def _seconds(times: Any) -> float:
    return float(times.user + times.system)


def process_tree_seconds(pid: int) -> float:
    """CPU seconds of pid and its living descendants (0 for any already gone)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += _seconds(process.cpu_times())
    return total


async def redis_cpu_seconds(url: str) -> float:
    """The Redis server's own CPU seconds since it started (INFO cpu)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        await client.aclose()


@dataclass
class Backends:
    """The PostgreSQL backends of one database, found by their process title."""

    postmaster: int
    database: str
    #: pid -> whether its title names the database (read once per pid).
    _ours: dict[int, bool] = field(default_factory=dict)
    #: pid -> CPU seconds at its latest sample.
    latest: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.postmaster).children()
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    if child.pid not in self._ours:
                        title = " ".join(child.cmdline())
                        self._ours[child.pid] = f" {self.database} " in f" {title} "
                    if self._ours[child.pid]:
                        self.latest[child.pid] = _seconds(child.cpu_times())


@dataclass
class CpuMeter:
    """Start before "go", stop after the answer: CPU seconds per part of the system."""

    #: part name -> pid whose process tree is that part (client, workers, server).
    processes: dict[str, int]
    redis_url: str | None = None
    backends: Backends | None = None
    _start: dict[str, float] = field(default_factory=dict)
    _backend_start: dict[int, float] = field(default_factory=dict)
    _sampler: asyncio.Task[None] | None = None

    async def _read(self) -> dict[str, float]:
        seconds = {name: process_tree_seconds(pid) for name, pid in self.processes.items()}
        if self.redis_url is not None:
            seconds["redis"] = await redis_cpu_seconds(self.redis_url)
        return seconds

    async def start(self) -> None:
        self._start = await self._read()
        if self.backends is not None:
            self.backends.sample()
            self._backend_start = dict(self.backends.latest)
            self._sampler = asyncio.create_task(self._sample(self.backends))

    async def _sample(self, backends: Backends) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            backends.sample()

    async def stop(self) -> dict[str, float]:
        end = await self._read()
        used = {name: end[name] - self._start[name] for name in end}
        if self.backends is not None and self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self.backends.sample()
            used["postgres_backends"] = sum(
                seconds - self._backend_start.get(pid, 0.0)
                for pid, seconds in self.backends.latest.items()
            )
        return used
