"""The processor's per-deployment secret, which keys the quote request ids it derives.

The request id a proposal's quote is submitted with shares the quote service's
namespace with the ids its clients choose. Derived with an HMAC under a
secret no client knows, it cannot be taken in advance: a client cannot compute
it. The secret is made on the first start and kept in the processor's store,
so it survives restarts (a proposal resubmitted after a crash derives the same
id and is deduplicated) and is shared by every process of the store.
"""

import secrets
from typing import Any

from queues.core.log_store import LogStore
from queues.records import field, version_of

#: The collection of an earlier release's journal holding the processor's
#: secrets (journal_import.py).
KEYS = "processor_keys"
#: The record of the request id key.
REQUEST_ID_KEY = "request_id_hmac"
RECORD_VERSION = 1
_KEY_BYTES = 32


def key_from_record(key: str, record: dict[str, Any]) -> tuple[str, bytes]:
    """(name, secret) of a journal's key record."""
    version_of(record, RECORD_VERSION)
    secret = bytes.fromhex(field(record, "secret", str))
    if len(secret) != _KEY_BYTES:
        raise ValueError(f"holds a key of {len(secret)} bytes, not {_KEY_BYTES}")
    return key, secret


#: Where the core's stores keep the key: one log, whose one entry is the key.
SETTINGS = "processor-settings"


async def stored_request_id_key(logs: LogStore, *, now: float) -> bytes:
    """The deployment's request id key in a LogStore shared by replicas: the
    first replica's append makes it, and every later one reads the same."""
    appended = await logs.append(
        SETTINGS, REQUEST_ID_KEY, "secret", secrets.token_bytes(_KEY_BYTES).hex(), now=now
    )
    return bytes.fromhex(appended.entry.body)
