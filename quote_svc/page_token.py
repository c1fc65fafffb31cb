"""Opaque AIP-158 page tokens: a creation-order cursor bound to the list's filters.

A token only continues the listing it came from: used with other filters, it is
refused rather than silently listing something else.
"""

import base64
import binascii

from service_runtime.errors import FieldViolation, InvalidArgumentError

_FIELD = "page_token"


def encode(cursor: int, filters: str) -> str:
    return base64.urlsafe_b64encode(f"{cursor}|{filters}".encode()).decode()


def decode(token: str, filters: str) -> int:
    """The cursor in token (0 for an empty token); INVALID_ARGUMENT if it is not ours."""
    if not token:
        return 0
    try:
        cursor, token_filters = base64.urlsafe_b64decode(token).decode().split("|", 1)
        value = int(cursor)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("is not a token this service issued") from None
    if token_filters != filters:
        raise _invalid("was issued for a listing with other filters")
    return value


def _invalid(description: str) -> InvalidArgumentError:
    return InvalidArgumentError([FieldViolation(_FIELD, description)])
