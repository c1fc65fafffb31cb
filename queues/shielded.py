"""Steps that a caller's cancellation must not cut in half.

A manager commits a change, then applies it to memory. Were the caller
cancelled between the two, the store would hold a change memory never saw,
and the next start would disagree with what was served. So each such step
runs as its own task (or as a chain of callbacks ending in a future, on a hot
path where a task per step costs too much), which cancelling the caller leaves
running to its end; the owner keeps them, to wait for those under way before
it closes its store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

R = TypeVar("R")
F = TypeVar("F", bound="asyncio.Future[Any]")


class ShieldedSteps:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    async def run(self, step: Coroutine[Any, Any, R]) -> R:
        """Run step to its end and return what it returns (or raise what it
        raises). Cancelling the caller stops the wait, never the step."""
        return await asyncio.shield(self.start(step))

    def start(self, step: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
        """Run step to its end with nobody waiting for it (wait() still does)."""
        return self.track(asyncio.create_task(step))

    def track(self, step: F) -> F:
        """Count a step driven by callbacks, done when this future is, for wait()."""
        self._tasks.add(step)
        step.add_done_callback(self._tasks.discard)
        return step

    async def wait(self) -> None:
        """Return once every step under way, and any they started meanwhile, has ended."""
        while self._tasks:
            # wait(), unlike gather(), cancels nothing should this caller be cancelled.
            await asyncio.wait(set(self._tasks))

    def __len__(self) -> int:
        """Steps under way."""
        return len(self._tasks)
