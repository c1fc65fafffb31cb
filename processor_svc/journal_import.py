"""The one-time import of an earlier release's journal (`processor.sqlite3`, a
records store) into the durable core's SQLite stores, so that an upgrade
keeps every order, proposal, request id and the request id key.

Each order's events are appended in sequence order under their keys, with
their own times; its accepted proposals, request ids, a completion still
waiting and its tombstone follow as StoredOrders keeps them, and a proposal
still being priced gets its pricing job. Every write is idempotent (keyed
appends, jobs with request ids), so an import cut short by a crash is simply
run again at the next start; only once it is whole is the journal renamed
`processor.sqlite3.imported`, kept, never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path

from processor_svc.completion_records import COMPLETIONS as JOURNAL_COMPLETIONS
from processor_svc.completion_records import completion_from_record
from processor_svc.event_entries import COMPLETED_KEY, EVENTS, proposal_key
from processor_svc.proposal_records import (
    PROPOSALS as JOURNAL_PROPOSALS,
)
from processor_svc.proposal_records import (
    REQUESTS as JOURNAL_REQUESTS,
)
from processor_svc.proposal_records import (
    proposal_from_record,
    request_from_record,
)
from processor_svc.request_id_key import KEYS, REQUEST_ID_KEY, SETTINGS, key_from_record
from processor_svc.stored_orders import (
    PROPOSALS,
    completion_job,
    pricing_job,
    remember_request,
    request_body,
)
from queues.core.job_store import JobStore
from queues.core.log_store import LogRemovedError, LogStore
from queues.order_events import EVENTS as JOURNAL_EVENTS
from queues.order_events import OrderEvent, OrderEventKind, event_from_record
from queues.order_tombstones import TOMBSTONES, tombstone_from_record
from queues.records import load_records
from queues.sqlite_file import sync_directory
from queues.storage import Store, StoreError
from queues.storage_sqlite import SqliteStore
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb
from service_runtime.codecs import ProtoCodec

log = logging.getLogger(__name__)

#: Orders imported at once: their appends share the stores' group commits.
_CONCURRENT_ORDERS = 64

Event = OrderEvent[quote_pb.QueueMessage]
_QUOTES = ProtoCodec(quote_pb.QueueMessage)


def journal_path(data_dir: Path) -> Path:
    return data_dir / "processor.sqlite3"


async def import_journal(journal: Path, logs: LogStore, jobs: JobStore, *, now: float) -> int:
    """Import journal (if it is there) into the opened stores and rename it;
    answers how many orders it held. Raises RecordError naming a record that
    cannot be read and StoreError if a store cannot: the journal is then left
    as it was, and the next start tries again."""
    if not await asyncio.to_thread(journal.exists):
        return 0
    store = SqliteStore(journal)
    await store.open()
    try:
        contents = await read_journal(store)
    finally:
        await store.close()
    orders = set(contents.events) | set(contents.proposals)
    orders |= set(contents.completions) | set(contents.tombstones)
    limit = asyncio.Semaphore(_CONCURRENT_ORDERS)

    async def one(order_req_id: str) -> None:
        async with limit:
            await _import_order(order_req_id, contents, logs, jobs, now=now)

    if contents.key is not None:
        await logs.append(SETTINGS, REQUEST_ID_KEY, "secret", contents.key.hex(), now=now)
    await asyncio.gather(*(one(order_req_id) for order_req_id in sorted(orders)))
    imported = journal.with_name(journal.name + ".imported")
    os.replace(journal, imported)
    for sidecar in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{journal}{sidecar}", f"{imported}{sidecar}")
    sync_directory(journal.parent)
    log.info("imported the journal %s: %d orders, now %s", journal, len(orders), imported.name)
    return len(orders)


class JournalContents:
    """What a journal holds, per order."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.proposals: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.requests: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.completions: dict[str, float] = {}
        self.tombstones: dict[str, float] = {}
        self.key: bytes | None = None


async def read_journal(store: Store) -> JournalContents:
    """Every record of the journal in store, decoded. Raises RecordError naming
    the first record that cannot be, StoreError if store cannot be read."""
    contents = JournalContents()
    for event in await load_records(
        store, JOURNAL_EVENTS, lambda _, record: event_from_record(record, _QUOTES)
    ):
        contents.events[event.order_req_id].append(event)
    for order, proposal, handle in await load_records(
        store, JOURNAL_PROPOSALS, proposal_from_record
    ):
        contents.proposals[order].append((proposal, handle))
    for request_id, request in await load_records(
        store, JOURNAL_REQUESTS, lambda key, record: (key, request_from_record(record))
    ):
        contents.requests[request.order_req_id].append(
            (request_id, request.proposal_id, request.fingerprint)
        )
    contents.completions = dict(
        await load_records(store, JOURNAL_COMPLETIONS, completion_from_record)
    )
    contents.tombstones = dict(await load_records(store, TOMBSTONES, tombstone_from_record))
    for name, secret in await load_records(store, KEYS, key_from_record):
        if name == REQUEST_ID_KEY:
            contents.key = secret
    return contents


async def _import_order(
    order_req_id: str, contents: JournalContents, logs: LogStore, jobs: JobStore, *, now: float
) -> None:
    if order_req_id in contents.tombstones:
        # Removed: its tombstone is a closed, removed head of its events' log.
        removed_at = contents.tombstones[order_req_id]
        with contextlib.suppress(LogRemovedError):
            await logs.close_log(EVENTS, order_req_id, now=removed_at)
            await logs.remove(EVENTS, [order_req_id], now=removed_at, tombstone=True)
        return
    # Records come in key order, which is each order's sequence order.
    events = contents.events.get(order_req_id, [])
    if [e.sequence for e in events] != list(range(1, len(events) + 1)):
        raise StoreError(
            f"the journaled log of order {order_req_id!r} is not numbered 1 to {len(events)}"
        )
    priced = set()
    for event in events:
        completed = event.kind is OrderEventKind.ORDER_COMPLETED
        key = COMPLETED_KEY if completed else proposal_key(event.proposal_id)
        priced.add(event.proposal_id)
        await logs.append(
            EVENTS,
            order_req_id,
            key,
            {
                "kind": event.kind.value,
                "proposal_id": event.proposal_id,
                "text": event.text,
                "quote": None if event.data is None else _QUOTES.encode(event.data),
                "error": event.error,
            },
            now=event.created_at,
            close=completed,
        )
    pending: list[Awaitable[object]] = []
    for proposal_id, handle in contents.proposals.get(order_req_id, []):
        await logs.append(PROPOSALS, order_req_id, proposal_id, {"handle": handle}, now=now)
        if proposal_id not in priced:
            pending.append(jobs.submit([pricing_job(order_req_id, proposal_id, handle)], now=now))
    for request_id, proposal_id, fingerprint in contents.requests.get(order_req_id, []):
        request = request_body(order_req_id, proposal_id, fingerprint)
        await remember_request(logs, request_id, request, now=now)
    ended = bool(events) and events[-1].kind is OrderEventKind.ORDER_COMPLETED
    if ended or order_req_id in contents.completions:
        await logs.close_log(PROPOSALS, order_req_id, now=now)
    if not ended and order_req_id in contents.completions:
        requested_at = contents.completions[order_req_id]
        pending.append(jobs.submit([completion_job(order_req_id, requested_at)], now=now))
    await asyncio.gather(*pending)
