"""A fresh PostgreSQL database, dropped after: for the procrastinate peer and
for the quote service on store postgres.

The server is QUOTEFLOW_BENCH_DATABASE_URL's (a local one with trust auth by
default). The procrastinate peer's run gets its own database,
bench_procrastinate_<random>, with procrastinate's schema applied; each round of
the quote service on postgres gets one too, bench_quote_<random>, empty (the
service migrates it). Each is dropped WITH (FORCE) when its block ends, however
it ends.

round_trips() counts what the run's database was asked: statements from
pg_stat_statements where the server preloads it (shared_preload_libraries),
otherwise transactions (pg_stat_database's xact_commit + xact_rollback), each
at least one round trip.
"""

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil  # type: ignore[import-untyped, unused-ignore]

from bench.cpu_meter import Backends

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT = 3


@dataclass(frozen=True)
class Database:
    #: The run's database, or None when there is none (then `found` says why).
    url: str | None
    found: str
    version: str | None = None
    #: The server's processes, when they are this machine's to measure.
    postmaster: int | None = None
    name: str = ""
    #: The server's maintenance database (QUOTEFLOW_BENCH_DATABASE_URL), for the counters.
    server: str = ""
    #: What round_trips() counts: "statements" (pg_stat_statements) or "transactions".
    counts: str = "transactions"

    def backends(self) -> Backends | None:
        if self.postmaster is None:
            return None
        return Backends(self.postmaster, self.name)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _postmaster(backend_pid: int) -> int | None:
    """The postmaster of a backend whose pid the server reported, if it is ours to see."""
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(backend_pid).parent()
        if parent is not None and "postgres" in parent.name():
            return int(parent.pid)
    return None


async def _apply_schema(url: str) -> None:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=1))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def _statements_counted(admin: Any, url: str) -> bool:
    """Whether pg_stat_statements can count the database's statements (it is preloaded)."""
    import psycopg

    row = await (await admin.execute("SHOW shared_preload_libraries")).fetchone()
    if row is None or "pg_stat_statements" not in str(row[0]):
        return False
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


async def round_trips(database: Database) -> int:
    """Statements or transactions (database.counts) the database has run so far.

    Read from the server's maintenance database, so the reading is not counted.
    Backends report their counts when they go idle, at most once a second, and
    when they exit: read once the clients are gone, after wait_idle()."""
    import psycopg

    # pg_stat_statements' view is in the database that created the extension
    # (the count then includes this reading's own statement or two).
    where = database.server
    query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s"
    if database.counts == "statements":
        assert database.url is not None
        where = database.url
        query = (
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s"
        )
    async with await psycopg.AsyncConnection.connect(where, autocommit=True) as admin:
        # A fresh snapshot of the cumulative statistics, not the transaction's cached one.
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        row = await (await admin.execute(query, (database.name,))).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


async def wait_idle(database: Database, within: float = 10.0) -> None:
    """Until no backend serves the database (its clients have gone and reported)."""
    import psycopg

    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    async with await psycopg.AsyncConnection.connect(database.server, autocommit=True) as admin:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            row = await (await admin.execute(query, (database.name,))).fetchone()
            if row is None or int(row[0]) == 0:
                return
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def fresh_database(
    prefix: str = "bench_procrastinate", *, procrastinate: bool = True
) -> AsyncIterator[Database]:
    """A fresh database (its url None, with the reason, when the server does not answer),
    with procrastinate's schema applied unless procrastinate is False."""
    import psycopg

    server = os.environ.get("QUOTEFLOW_BENCH_DATABASE_URL", DEFAULT_URL)
    parts = urlsplit(server)
    shown = f"{parts.hostname}:{parts.port or 5432}"
    try:
        admin = await psycopg.AsyncConnection.connect(
            server, autocommit=True, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as error:
        reason = " ".join(str(error).split())[:200]
        yield Database(None, f"skipped: PostgreSQL did not answer at {shown}: {reason}")
        return
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        row = await (await admin.execute("SELECT pg_backend_pid(), version()")).fetchone()
        assert row is not None
        postmaster = _postmaster(int(row[0]))
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            url = _with_database(server, name)
            if procrastinate:
                await _apply_schema(url)
            counted = await _statements_counted(admin, url)
            cpu = "its backends' CPU measured" if postmaster else "its CPU not measured"
            yield Database(
                url,
                f"database {name} on the PostgreSQL at {shown}, fresh for the run ({cpu})",
                str(row[1]).split(" on ")[0],
                postmaster,
                name,
                server,
                "statements" if counted else "transactions",
            )
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
