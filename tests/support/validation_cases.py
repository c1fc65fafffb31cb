"""What the services' validation tests share: the issue's misleading ids and
invalid Durations, and reading an INVALID_ARGUMENT's field violations."""

from collections.abc import Awaitable

import grpc
import pytest

from support.rpc_errors import field_violations

#: How a field violation for an id outside the id grammar begins.
ID_GRAMMAR = "must not contain whitespace, control, format, separator, private-use or unassigned"
#: Ids with a space, a NUL, a zero width space, a byte order mark, an ANSI
#: escape and a right-to-left override.
BAD_IDS = ["O 1", "\x00", "\u200b", "\ufeffO1", "O1\x1b[31m", "\u202eO1"]
#: (seconds, nanos) that are no valid Duration: opposite signs, or |nanos| >= 1e9.
BAD_DURATIONS = [(1, -999_999_999), (-1, 1), (0, 1_000_000_000), (60, -1_000_000_000)]


async def violations_of(call: Awaitable[object]) -> dict[str, str]:
    """The field violations of a call that must answer INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return field_violations(raised.value)
