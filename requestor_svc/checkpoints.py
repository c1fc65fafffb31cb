"""A follow whose progress is saved as its events arrive, so that another attempt,
on this replica or another, resumes from the last saved cursor.

Saves run beside the follow, one at a time: events that arrive while one is
under way are saved together by the next, so a slow store delays saving, never
following.
"""

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from quoteflow.processor.v1 import processor_service_pb2 as processor_pb
from requestor_svc.order_follower import OrderProgress

#: Collects the order's events into the progress it is given (OrderFollower.follow).
Follow = Callable[[OrderProgress], Awaitable[OrderProgress]]

#: Saves a snapshot of the progress.
Save = Callable[[OrderProgress], Awaitable[None]]


@dataclass
class SavedProgress(OrderProgress):
    """OrderProgress that says when it took a new event or reconnected."""

    changed: asyncio.Event = field(default_factory=asyncio.Event, compare=False, repr=False)

    @classmethod
    def of(cls, progress: OrderProgress) -> "SavedProgress":
        fields = {f.name: getattr(progress, f.name) for f in dataclasses.fields(OrderProgress)}
        return cls(**fields)

    def accept(self, event: processor_pb.OrderEvent) -> bool:
        taken = super().accept(event)
        if taken:
            self.changed.set()
        return taken

    def reconnected(self) -> None:
        super().reconnected()
        self.changed.set()


async def follow_saving(follow: Follow, progress: SavedProgress, save: Save) -> OrderProgress:
    """follow(progress), saving it after the events it takes. What save raises
    ends the follow and is raised here."""
    following = asyncio.ensure_future(follow(progress))
    saving = asyncio.ensure_future(_save_changes(progress, save))
    try:
        await asyncio.wait({following, saving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        following.cancel()
        saving.cancel()
        await asyncio.wait({following, saving})
    if not following.cancelled():
        return following.result()
    # Only a save that raised ends the wait with the follow unfinished.
    error = saving.exception()
    assert error is not None, "saving ends only by raising"
    raise error


async def _save_changes(progress: SavedProgress, save: Save) -> None:
    while True:
        await progress.changed.wait()
        progress.changed.clear()
        await save(progress.snapshot())
