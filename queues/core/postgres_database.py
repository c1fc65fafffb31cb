"""What the durable core's PostgreSQL stores share: a connection pool with
their codecs, versioned migrations, a LISTEN connection that reconnects, and
how a database failure becomes a StoreError (asyncpg)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from queues.storage import StoreError

#: What asyncpg raises when the database cannot be reached or refuses a statement.
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[asyncpg.Record]

#: Each entry migrates a schema one version up, as statements run in order.
Migrations = Sequence[Sequence[str]]


def display_url(url: str) -> str:
    """The URL without its password, to name the database in errors and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class SchemaError(Exception):
    """The database holds a schema this code cannot use."""


class Database:
    """One pool over url, its schema migrated at open, and the listeners of its
    channels. A store holds one and names itself after it."""

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        migrations: Migrations,
        min_connections: int = 1,
        max_connections: int = 10,
    ) -> None:
        self.url = url
        self.name = display_url(url)
        self._schema = schema
        self._migrations = migrations
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._channels: dict[str, Callable[[str], None]] = {}
        # The connection that LISTENs for every replica's changes, and the task
        # reconnecting it after it was lost.
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._relisten: asyncio.Task[None] | None = None

    async def open(self, channels: dict[str, Callable[[str], None]]) -> None:
        """Open the pool, migrate the schema and LISTEN on channels, each
        notification's payload going to its callback. Raises StoreError."""
        self._channels = channels
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self._min_connections,
                max_size=self._max_connections,
                init=_set_codecs,
                reset=_keep_session,
            )
            async with self._pool.acquire() as connection:
                await self._migrate(connection)
            if channels:
                await self._listen()
        except (*DATABASE_ERRORS, SchemaError) as error:
            await self.close()
            raise StoreError(f"cannot open store {self.name}: {one_line(error)}") from error

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if self._relisten is not None:
            self._relisten.cancel()
            self._relisten = None
        if listener is not None:
            await listener.close()
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def connection(self, action: str) -> AsyncIterator[Connection]:
        """A pooled connection; a database failure within is a StoreError
        saying what could not be done."""
        if self._pool is None:
            raise StoreError(f"cannot {action} store {self.name}: it is not open")
        try:
            async with self._pool.acquire() as connection:
                yield connection
        except DATABASE_ERRORS as error:
            raise StoreError(f"cannot {action} store {self.name}: {one_line(error)}") from error

    async def ping(self) -> None:
        """Return once the database answers a trivial query on a pooled
        connection; raise StoreError if it cannot (or the store is not open)."""
        async with self.connection("reach") as connection:
            await connection.fetchval("SELECT 1")

    async def _migrate(self, connection: Connection) -> None:
        newest = len(self._migrations)
        versions = f"{self._schema}_schema_version"
        async with connection.transaction():
            # Replicas opening at once take turns; the lock ends with the transaction.
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"quoteflow.{versions}"
            )
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {versions} (version integer NOT NULL)"
            )
            version = await connection.fetchval(f"SELECT max(version) FROM {versions}") or 0
            if version > newest:
                raise SchemaError(
                    f"its {self._schema} schema is version {version},"
                    f" newer than this code's {newest}"
                )
            if version == newest:
                return
            for statements in self._migrations[version:]:
                for statement in statements:
                    await connection.execute(statement)
            await connection.execute(f"DELETE FROM {versions}")
            await connection.execute(f"INSERT INTO {versions} VALUES ($1)", newest)

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.url)
        try:
            for channel, heard in self._channels.items():
                await listener.add_listener(channel, _payload_to(heard))
        except BaseException:
            await listener.close()
            raise
        listener.add_termination_listener(self._lost)
        self._listener = listener

    def _lost(self, connection: object) -> None:
        # close() forgets the listener before closing it: only a loss reconnects.
        if connection is self._listener and self._pool is not None:
            self._listener = None
            self._relisten = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        # What is announced until the listener is back is lost (changes.py allows it).
        delay = 0.1
        while True:
            try:
                await self._listen()
                return
            except DATABASE_ERRORS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _payload_to(
    heard: Callable[[str], None],
) -> Callable[[object, int, str, object], None]:
    return lambda _connection, _pid, _channel, payload: heard(str(payload))


async def _set_codecs(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    # json's binary form is the JSON text itself.
    await connection.set_type_codec(
        "json", schema="pg_catalog", encoder=orjson.dumps, decoder=orjson.loads, format="binary"
    )


async def _keep_session(_connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release a connection to the pool as it is. asyncpg's default reset
    (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) costs a round
    trip per operation, and these stores leave nothing it resets: their
    advisory locks end with their transactions, and they open no cursor,
    LISTEN on their own connection and set nothing. An open transaction is
    still rolled back (asyncpg does that before calling this)."""


class DatabaseStore:
    """What a core store over one Database shares: opening it (migrating its
    schema and LISTENing on its channel, each notification's payload to
    heard), closing it and pinging it. A subclass names its schema,
    migrations, channel and what it does with a notification."""

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        migrations: Migrations,
        channel: str,
        heard: Callable[[str], None],
        min_connections: int,
        max_connections: int,
    ) -> None:
        self._database = Database(
            url,
            schema=schema,
            migrations=migrations,
            min_connections=min_connections,
            max_connections=max_connections,
        )
        self._channels = {channel: heard}
        self.url = url
        self.name = self._database.name

    async def open(self) -> None:
        await self._database.open(self._channels)

    async def close(self) -> None:
        await self._database.close()

    async def ping(self) -> None:
        """Return once the database answers; StoreError if it cannot."""
        await self._database.ping()
