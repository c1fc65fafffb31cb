"""Completions asked for while proposals were still being priced, as store records.

A completion's record ("order_completions", keyed by the order) says when
CompleteOrder was first called for an order that still had proposals without
an event. It is committed before the completion waits, so a restart finishes
the completion from where it was (the wait counted from the same moment)
instead of forgetting it. It is deleted with its order's log.
"""

from typing import Any

from queues.records import VERSION, field, version_of
from queues.storage import Delete, Put

COMPLETIONS = "order_completions"
RECORD_VERSION = 1


def completion_put(order_req_id: str, requested_at: float) -> Put:
    return Put(
        COMPLETIONS,
        order_req_id,
        {VERSION: RECORD_VERSION, "order_req_id": order_req_id, "requested_at": requested_at},
    )


def completion_delete(order_req_id: str) -> Delete:
    return Delete(COMPLETIONS, order_req_id)


def completion_from_record(key: str, record: dict[str, Any]) -> tuple[str, float]:
    """(order id, requested at) of the record completion_put made at key."""
    version_of(record, RECORD_VERSION)
    return field(record, "order_req_id", str), field(record, "requested_at", float)
