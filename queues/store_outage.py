"""What a message queue does while its store cannot record attempts.

A full disk fails every commit until space is freed, and an attempt whose
outcome could not be recorded must run again. Retrying each message on its own
timer would run, and log, every waiting message once per interval for as long
as the store is down. So during an outage the queue holds its ready messages
back and lets one through per interval as a probe, with capped exponential
backoff between probes. The first commit that succeeds, the probe's or any
other, ends the outage and releases every message held. An outage is logged
when it starts, once per failed probe, and when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from queues.backoff import Backoff

log = logging.getLogger(__name__)


class StoreOutage:
    def __init__(self, backoff: Backoff, release: Callable[[str], bool]) -> None:
        """release(message_id) makes a held message ready again, answering False
        for one that no longer waits (cancelled, say)."""
        self._backoff = backoff
        self._release = release
        #: True from the first failure to record an attempt until a commit succeeds.
        self.active = False
        # The messages held back, in the order they were held (a dict as an ordered set).
        self._held: dict[str, None] = {}
        self._probe_id: str | None = None
        self._failed_probes = 0
        self._timer: asyncio.TimerHandle | None = None
        # While the queue is closed no probe is set going; resume() sets one.
        self._paused = False

    def holds(self, message_id: str) -> bool:
        """Whether a ready message must wait for the store rather than run: during
        an outage, every message but the probe. A message held is released later."""
        if not self.active or message_id == self._probe_id:
            return False
        self._held[message_id] = None
        return True

    def failed(self, message_id: str, error: Exception) -> None:
        """An attempt of message_id could not be recorded: it is pending again, and waits."""
        self._held[message_id] = None
        if not self.active:
            self.active = True
            delay = self._schedule()
            log.error(
                "the store cannot record attempts: %s; messages wait for it, one is "
                "tried again in %.1fs",
                error,
                delay,
            )
        elif message_id == self._probe_id:
            self._probe_id = None
            self._failed_probes += 1
            delay = self._schedule()
            log.warning(
                "the store still cannot record attempts: %s; %d messages wait, one is "
                "tried again in %.1fs",
                error,
                len(self._held),
                delay,
            )

    def ended(self) -> None:
        """A commit succeeded, so the store works: release every message held."""
        if not self.active:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.active = False
        self._probe_id = None
        self._failed_probes = 0
        held, self._held = self._held, {}
        log.info("the store records again: %d waiting messages are released", len(held))
        for message_id in held:
            self._release(message_id)

    def pause(self) -> None:
        """Stop probing (the queue is closing); the messages held stay held."""
        self._paused = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def resume(self) -> None:
        """Probe again after pause(); a probe cut by the close is held again."""
        self._paused = False
        if not self.active or self._timer is not None:
            return
        if self._probe_id is not None:
            self._held[self._probe_id] = None
            self._probe_id = None
        self._schedule()

    def _schedule(self) -> float:
        delay = self._backoff.delay(self._failed_probes + 1)
        if not self._paused:
            self._timer = asyncio.get_running_loop().call_later(delay, self._probe)
        return delay

    def _probe(self) -> None:
        self._timer = None
        while self._held:
            message_id = next(iter(self._held))
            del self._held[message_id]
            if self._release(message_id):
                self._probe_id = message_id
                return
        # Nothing waits any more; the next failure to record starts a new outage.
        self.active = False
        self._failed_probes = 0
        log.info("no message waits for the store any more")
