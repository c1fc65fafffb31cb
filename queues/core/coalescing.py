"""Calls made while a batch is being written go together in the next batch:
the group commit of the PostgreSQL store's submissions and completions and of
the processor's quote submissions, and the one read of a queue's counts that
a burst of submissions takes its queue positions from.

One batch is in flight at a time. The first call goes out at once, alone; the
calls that arrive while it is in flight wait, and go together as soon as it
ends. So a lone call waits for nothing, and a burst costs one write per round
trip rather than one per call. A caller that goes away (cancelled) leaves its
item to the batch: what it asked for may still be done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from queues.storage import CommitObserver

I = TypeVar("I")  # noqa: E741 - an item, as T is a value
A = TypeVar("A")

#: Writes a batch; answers, per item and in order, its answer or the error
#: its caller gets.
WriteBatch = Callable[[list[I]], Awaitable[Sequence[A | BaseException]]]


class Coalescing(Generic[I, A]):
    def __init__(
        self,
        write: WriteBatch[I, A],
        *,
        most: int | None = None,
        observe: CommitObserver | None = None,
    ) -> None:
        """write: how a batch is written; most: the largest batch; observe:
        told each batch's seconds and size, if it was written."""
        self._write = write
        self._most = most
        self._observe = observe
        self._waiting: list[tuple[I, asyncio.Future[A]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def call(self, item: I) -> A:
        """What the batch item goes in answers for it."""
        answer: asyncio.Future[A] = asyncio.get_running_loop().create_future()
        # A caller that went away leaves a failure nobody awaits: not an error.
        answer.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._waiting.append((item, answer))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_waiting())
        return await asyncio.shield(answer)

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                cut = len(self._waiting) if self._most is None else self._most
                batch, self._waiting = self._waiting[:cut], self._waiting[cut:]
                started = time.perf_counter()
                try:
                    answers = await self._write([item for item, _ in batch])
                except Exception as error:
                    answers = [error] * len(batch)
                else:
                    if self._observe is not None:
                        self._observe(time.perf_counter() - started, len(batch))
                for (_, answer), outcome in zip(batch, answers, strict=True):
                    if answer.done():
                        continue
                    if isinstance(outcome, BaseException):
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(outcome)
        finally:
            self._writer = None
