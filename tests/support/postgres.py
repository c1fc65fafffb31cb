"""A fresh PostgreSQL database per test, on the server QUOTEFLOW_TEST_DATABASE_URL
names (a local one with trust auth by default).

Where no server answers, the test is skipped with one line saying why, so the
suite runs anywhere; with QUOTEFLOW_REQUIRE_POSTGRES=1 (CI) it fails instead,
so a missing server cannot pass as a green run.
"""

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from queues.core.postgres_database import display_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Seconds to wait for the server before calling it unreachable.
_CONNECT_TIMEOUT = 5.0

# Why each server URL was unreachable: later tests skip at once instead of each
# waiting out the timeout again.
_unreachable: dict[str, str] = {}


def server_url() -> str:
    return os.environ.get("QUOTEFLOW_TEST_DATABASE_URL", DEFAULT_URL)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database on the server, yield its URL, then drop it."""
    url = server_url()
    admin = await _connect(url)
    name = f"qf_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield _database_url(url, name)
        finally:
            # FORCE: a connection the test left open must not keep it alive.
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def _connect(url: str) -> "asyncpg.Connection[asyncpg.Record]":
    if url not in _unreachable:
        try:
            return await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            _unreachable[url] = " ".join(str(error).split()) or type(error).__name__
    message = f"PostgreSQL is not reachable at {display_url(url)}: {_unreachable[url]}"
    if os.environ.get("QUOTEFLOW_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{message} (QUOTEFLOW_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(message)


def _database_url(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
