"""Accepted proposals and the request ids that asked for them, as store records.

A proposal's record ("proposals", keyed by order and proposal) holds the handle
of its pricing: after a restart that is all the pricer needs to follow the
quote again. A request id's record ("proposal_requests", keyed by the id) holds
what it was first used for, so that a repeat is answered alike and a reuse for
something else is refused (AIP-155) across restarts too. Both are deleted with
their order's log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from queues.records import VERSION, field, version_of
from queues.storage import Delete, Put

PROPOSALS = "proposals"
REQUESTS = "proposal_requests"
#: The version (records.py) of the shapes both kinds of record are written in.
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class Request:
    """What a request id was first used for; equal only for the same request."""

    order_req_id: str
    proposal_id: str
    #: Tells a repeat from a different submission of the same proposal.
    fingerprint: str


def proposal_key(order_req_id: str, proposal_id: str) -> str:
    # JSON keeps the pair unambiguous whatever characters the ids hold.
    return json.dumps([order_req_id, proposal_id])


def proposal_put(order_req_id: str, proposal_id: str, handle: str) -> Put:
    return Put(
        PROPOSALS,
        proposal_key(order_req_id, proposal_id),
        {
            VERSION: RECORD_VERSION,
            "order_req_id": order_req_id,
            "proposal_id": proposal_id,
            "handle": handle,
        },
    )


def request_put(request_id: str, request: Request) -> Put:
    return Put(REQUESTS, request_id, {VERSION: RECORD_VERSION, **asdict(request)})


def proposal_from_record(key: str, record: dict[str, Any]) -> tuple[str, str, str]:
    """(order id, proposal id, handle) of the record proposal_put made at key."""
    version_of(record, RECORD_VERSION)
    return (
        field(record, "order_req_id", str),
        field(record, "proposal_id", str),
        field(record, "handle", str),
    )


def request_from_record(record: dict[str, Any]) -> Request:
    version_of(record, RECORD_VERSION)
    return Request(
        field(record, "order_req_id", str),
        field(record, "proposal_id", str),
        field(record, "fingerprint", str),
    )


def order_deletes(
    order_req_id: str, proposal_ids: Iterable[str], request_ids: Iterable[str]
) -> list[Delete]:
    """The Deletes of every record an order's proposals and request ids have."""
    return [
        *(Delete(PROPOSALS, proposal_key(order_req_id, p)) for p in proposal_ids),
        *(Delete(REQUESTS, r) for r in request_ids),
    ]
