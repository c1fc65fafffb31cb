"""Removed orders' ids, and how each one is kept as a record of the "order_tombstones" collection.

A record of an earlier release's journal, read by processor_svc/journal_import.py.
A tombstone says an order existed and was removed, and when: while it is
kept, the id is refused rather than taken for a new, empty order, so whoever
still follows the order learns that it is gone, across restarts too.
"""

from typing import Any

from queues.records import field, version_of
from queues.storage import Put

#: The collection holding a tombstone per removed order, keyed by its id.
TOMBSTONES = "order_tombstones"
_VERSION = 1


def tombstone_put(order_req_id: str, removed_at: float) -> Put:
    return Put(
        TOMBSTONES,
        order_req_id,
        {"version": _VERSION, "order_req_id": order_req_id, "removed_at": removed_at},
    )


def tombstone_from_record(key: str, record: dict[str, Any]) -> tuple[str, float]:
    """(order id, removed at) of the tombstone whose record tombstone_put made at key."""
    version_of(record, _VERSION)
    return field(record, "order_req_id", str), field(record, "removed_at", float)
