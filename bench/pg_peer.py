"""A PostgreSQL database for the procrastinate peer: fresh for the run, dropped after.

The server is QUOTEFLOW_BENCH_DATABASE_URL's (a local one with trust auth by
default). The run gets its own database, bench_procrastinate_<random>, with
procrastinate's schema applied; it is dropped WITH (FORCE) when the run ends,
however it ends.
"""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psutil

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
            return parent.pid
    return None


async def _apply_schema(url: str) -> None:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=1))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[Database]:
    """A Database for the run (its url None, with the reason, when the server does not answer)."""
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
    name = f"bench_procrastinate_{secrets.token_hex(6)}"
    try:
        row = await (await admin.execute("SELECT pg_backend_pid(), version()")).fetchone()
        assert row is not None
        postmaster = _postmaster(int(row[0]))
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            url = _with_database(server, name)
            await _apply_schema(url)
            cpu = "its backends' CPU measured" if postmaster else "its CPU not measured"
            yield Database(
                url,
                f"database {name} on the PostgreSQL at {shown}, fresh for the run ({cpu})",
                str(row[1]).split(" on ")[0],
                postmaster,
                name,
            )
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
