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

from queues.storage import Put, Store, StoreError

#: The collection holding the processor's secrets.
KEYS = "processor_keys"
#: The record of the request id key.
REQUEST_ID_KEY = "request_id_hmac"
_VERSION = 1
_KEY_BYTES = 32


async def request_id_key(store: Store) -> bytes:
    """The deployment's request id key: the stored one, or a new one committed
    first. Raises StoreError if the store cannot be read or written, or holds a
    record that is not a key."""
    for key, record in await store.load(KEYS):
        if key == REQUEST_ID_KEY:
            return _decode(record)
    secret = secrets.token_bytes(_KEY_BYTES)
    await store.commit([Put(KEYS, REQUEST_ID_KEY, {"version": _VERSION, "secret": secret.hex()})])
    return secret


def _decode(record: Any) -> bytes:
    try:
        secret = bytes.fromhex(record["secret"])
    except (TypeError, KeyError, ValueError) as error:
        raise StoreError(
            f"record {REQUEST_ID_KEY!r} of collection {KEYS!r} is not a key: {error!r}"
        ) from error
    if len(secret) != _KEY_BYTES:
        raise StoreError(
            f"record {REQUEST_ID_KEY!r} of collection {KEYS!r} holds a key of "
            f"{len(secret)} bytes, not {_KEY_BYTES}"
        )
    return secret
