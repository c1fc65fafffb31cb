"""A periodic duty that runs once per interval across every replica of a store:
the retention sweeps. Each interval, whichever process holds the duty's lead
(JobStore.lead) runs it; the others skip that round."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from queues.core.job_store import JobStore
from queues.storage import StoreError

log = logging.getLogger(__name__)


async def run_led_periodically(
    store: JobStore,
    name: str,
    owner: str,
    duty: Callable[[], Awaitable[int]],
    *,
    interval: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Every interval seconds, run duty if owner holds the lead called name;
    duty answers how many things it removed, logged when any. A StoreError is
    logged and the next round tries again. Runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            if not await store.lead(name, owner, ttl=interval, now=clock()):
                continue
            removed = await duty()
        except StoreError as error:
            log.error("%s could not finish: %s", name, error)
            continue
        if removed:
            log.info("%s removed %d", name, removed)
