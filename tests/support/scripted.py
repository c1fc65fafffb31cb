"""The core the suite's scripted fakes share: handlers, task functions and
processors whose fate per name the test scripts, and a record of what they did."""

import asyncio
from collections.abc import Callable

from support.polling import POLL_DEADLINE_SECONDS


class Scripted:
    """Plays a name's script: it starts, waits at its gate or hangs, then fails as
    often as scripted or finishes. Every step is logged as "<step> <name>"
    (start, cancelled, failed, end), so a test can check the order across names."""

    def __init__(self, failure: str = "boom {}") -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.hang: set[str] = set()
        self.failures: dict[str, int] = {}
        self.failure = failure
        self.log: list[str] = []
        self.running = 0
        self.max_running = 0
        # Replaced on every change, so each waiter wakes once per change and looks again.
        self._changed = asyncio.Event()

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    @property
    def started(self) -> list[str]:
        return self._names("start")

    @property
    def cancelled(self) -> list[str]:
        return self._names("cancelled")

    @property
    def finished(self) -> list[str]:
        return self._names("end")

    async def play(self, name: str, fail: str = "") -> None:
        """Run name's script; fail with `fail` if given, else as `failures` says."""
        self._step("start", name, +1)
        try:
            await self.hold(name)
        except asyncio.CancelledError:
            self._step("cancelled", name, -1)
            raise
        if not fail and self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            fail = self.failure.format(name)
        if fail:
            self._step("failed", name, -1)
            raise RuntimeError(fail)
        self._step("end", name, -1)

    async def hold(self, name: str) -> None:
        """Where a started name waits until the test lets it go on."""
        if name in self.hang:
            await asyncio.Event().wait()
        if name in self.gates:
            await self.gates[name].wait()

    def note(self, entry: str) -> None:
        """Log an entry of the test's own, waking whoever waits for it."""
        self.log.append(entry)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, entry: str) -> None:
        await self._wait_until(lambda: entry in self.log, entry)

    async def wait_started(self, name: str) -> None:
        await self.wait_for(f"start {name}")

    async def wait_cancelled(self, name: str) -> None:
        await self.wait_for(f"cancelled {name}")

    async def wait_started_count(self, count: int) -> None:
        await self._wait_until(lambda: len(self.started) >= count, f"{count} started")

    def _step(self, step: str, name: str, running: int) -> None:
        self.running += running
        self.max_running = max(self.max_running, self.running)
        self.note(f"{step} {name}")

    def _names(self, step: str) -> list[str]:
        prefix = f"{step} "
        return [entry.removeprefix(prefix) for entry in self.log if entry.startswith(prefix)]

    async def _wait_until(self, done: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(POLL_DEADLINE_SECONDS):
                while not done():
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"never saw {what}; log: {self.log}") from None
