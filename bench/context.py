"""What every section of a bench run shares: sizes, processes, load generators, figures."""

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import Processes
from bench.results import Figure
from bench.servers import Servers
from bench.sizes import Sizes
from tools.launcher import Launched


@dataclass
class Run:
    repo: Path
    #: A temporary directory: data dirs, logs, profiles.
    work: Path
    sizes: Sizes
    smoke: bool
    processes: Processes
    servers: Servers
    #: Persistent load-generator processes (bench.loadgen), at least two.
    loadgens: list[Launched]
    #: Figure 3's systems to run (--e2e-peers); None for all of them.
    e2e_peers: list[str] | None = None
    #: Figure 3's systems the sections asked for (--only e2e-postgres, e2e-batch); None for all.
    e2e_systems: list[str] | None = None
    figures: list[Figure] = field(default_factory=list)
    #: Per section, what the report shows beyond figures (tables, settings, profiles).
    notes: dict[str, Any] = field(default_factory=dict)
    #: How to reach the servers that need TLS and a token, by address: the
    #: keyword arguments of service_runtime.channels.client_security.
    client_security: dict[str, dict[str, str]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        """Progress on stderr, with the seconds since the run started."""
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)
