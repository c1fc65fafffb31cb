"""The processes the bench starts, and the guarantee that none outlives it.

Every child is started through Processes (with tools.launcher, the launcher the
tests and the tools use too) and killed when its block exits,
however it exits (an error, a timeout, Ctrl-C, SIGTERM). Children that are
Python modules of this package also ask the kernel to kill them should the
bench itself die without cleaning up (set_parent_death_signal), so not even a
SIGKILL of the bench leaves a server running.
"""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tools.launcher import Launched, launch, python_env

#: After SIGTERM, how long a child gets before SIGKILL.
STOP_GRACE = 5.0
_PR_SET_PDEATHSIG = 1


def set_parent_death_signal() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before the prctl took effect.
        if os.getppid() == 1:
            os._exit(1)


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    """Starts children with their output in log_dir; stops them all on exit."""

    def __init__(self, repo: Path, log_dir: Path) -> None:
        self._repo = repo
        self._log_dir = log_dir
        self._children: list[Launched] = []
        self._count = 0

    async def __aenter__(self) -> "Processes":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_all()

    async def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        talk: bool = False,
        python: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Launched:
        """Start argv (after the interpreter, if python) with stderr in a log file,
        env added to its environment; with talk, stdin and stdout are pipes for
        line commands and JSON answers."""
        self._count += 1
        log = self._log_dir / f"{self._count:03d}-{name}.log"
        command = [sys.executable, *argv] if python else list(argv)
        launched = await launch(
            command,
            name=name,
            env=python_env(**(env or {})),
            cwd=self._repo,
            log_file=log,
            talk=talk,
        )
        self._children.append(launched)
        return launched

    async def stop(
        self, child: Launched, signum: int = signal.SIGTERM, grace: float = STOP_GRACE
    ) -> None:
        await child.stop(signum, grace)
        with contextlib.suppress(ValueError):
            self._children.remove(child)

    async def stop_all(self) -> None:
        children, self._children = self._children, []
        # Shielded: a cancelled bench must still reap what it started.
        await asyncio.shield(asyncio.gather(*(c.stop(grace=STOP_GRACE) for c in children)))
