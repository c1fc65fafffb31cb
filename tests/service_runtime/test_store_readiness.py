"""Readiness that follows the database (service_runtime.store_readiness): a fake
check that fails then answers, readiness made of named conditions, the
combination with a downstream, and one ping of a real PostgreSQL store."""

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.polling import poll
from support.postgres import fresh_database

from queues.core.memory_store import MemoryJobStore
from queues.core.postgres_log_store import PostgresLogStore
from queues.core.postgres_store import PostgresJobStore
from queues.storage import StoreError
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.downstream import Downstream
from service_runtime.server import RunningServer, ServiceBinding, start_server
from service_runtime.store_readiness import (
    Readiness,
    store_check,
    store_readiness_tracked,
    track_downstream_and_store_readiness,
    track_store_readiness,
)

QUOTE_SERVICE = quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Checks this often here: transitions are quick, and polled for.
INTERVAL = 0.01


class FakeDatabase:
    """A check() that answers while answering is set, and raises StoreError
    (as a PostgreSQL store's ping does) while it is not."""

    def __init__(self, *, answering: bool = True) -> None:
        self.answering = answering
        #: Set to hold every check until it is cleared (a database that hangs).
        self.hangs = False
        self.checks = 0

    async def check(self) -> None:
        self.checks += 1
        if self.hangs:
            await asyncio.Event().wait()
        if not self.answering:
            raise StoreError("cannot reach store postgresql://db/quoteflow: connection refused")


class RecordingTarget:
    """A ReadinessTarget that keeps every readiness set on it."""

    def __init__(self) -> None:
        self.sets: list[bool] = []

    async def set_ready(self, ready: bool) -> None:
        self.sets.append(ready)


async def health_of(channel: grpc.aio.Channel, service: str) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service)
    )
    status: int = answer.status
    return status


async def readiness_becomes(channel: grpc.aio.Channel, wanted: int) -> None:
    await poll(
        lambda: health_of(channel, QUOTE_SERVICE),
        wanted.__eq__,
        health_pb2.HealthCheckResponse.ServingStatus.Name(wanted),
    )


async def ready_is(target: RecordingTarget, wanted: bool) -> None:
    await poll(lambda: target.sets[-1:], [wanted].__eq__, f"readiness {wanted}")


def quote_binding() -> ServiceBinding:
    servicer = quote_grpc.QuoteServiceServicer()
    return ServiceBinding(
        QUOTE_SERVICE, lambda s: quote_grpc.add_QuoteServiceServicer_to_server(servicer, s)
    )


@pytest.fixture
async def downstream_server() -> AsyncIterator[RunningServer]:
    """A quote service to depend on: only its health matters here."""
    running = await start_server([quote_binding()], host="127.0.0.1", port=0)
    yield running
    await running.stop(None)


@pytest.fixture
async def downstream(downstream_server: RunningServer) -> AsyncIterator[Downstream]:
    reached = Downstream(
        "quote service", downstream_server.address, health_name=QUOTE_SERVICE, deadline=5.0
    )
    yield reached
    await reached.close()


# -- following the store ---------------------------------------------------------


async def test_not_serving_while_the_check_fails_serving_once_it_answers(
    server, channel, log_records
) -> None:
    database = FakeDatabase(answering=False)
    task = asyncio.create_task(
        track_store_readiness(server, database.check, interval=INTERVAL, name="quote store")
    )
    try:
        await readiness_becomes(channel, NOT_SERVING)
        # Alive all along: restarting would not bring the database back.
        assert await health_of(channel, "") == SERVING
        # It keeps checking, and stays not ready while the database is away.
        seen = database.checks
        await poll(lambda: database.checks, lambda n: n >= seen + 3, "three more checks")
        assert await health_of(channel, QUOTE_SERVICE) == NOT_SERVING

        database.answering = True
        await readiness_becomes(channel, SERVING)

        database.answering = False
        await readiness_becomes(channel, NOT_SERVING)
        assert await health_of(channel, "") == SERVING
        database.answering = True
        await readiness_becomes(channel, SERVING)
    finally:
        task.cancel()
        await asyncio.wait([task])
    messages = [r.getMessage() for r in log_records.records if r.name.endswith("store_readiness")]
    # One line per change, not per check.
    assert messages == [
        "store unavailable",
        "store answering",
        "store unavailable",
        "store answering",
    ]
    unavailable = next(r for r in log_records.records if r.getMessage() == "store unavailable")
    assert unavailable.levelno == logging.WARNING
    assert unavailable.fields["store"] == "quote store"
    assert "connection refused" in unavailable.fields["error"]


async def test_a_check_that_hangs_counts_as_failing() -> None:
    database = FakeDatabase()
    target = RecordingTarget()
    task = asyncio.create_task(
        track_store_readiness(
            target, database.check, interval=INTERVAL, name="quote store", check_timeout=0.05
        )
    )
    try:
        await ready_is(target, True)
        database.hangs = True
        await ready_is(target, False)
        database.hangs = False
        await ready_is(target, True)
    finally:
        task.cancel()
        await asyncio.wait([task])
    # Set on each change only.
    assert target.sets == [True, False, True]


async def test_once_draining_an_answering_store_does_not_make_it_ready(server, channel) -> None:
    database = FakeDatabase(answering=False)
    task = asyncio.create_task(
        track_store_readiness(server, database.check, interval=INTERVAL, name="quote store")
    )
    try:
        await readiness_becomes(channel, NOT_SERVING)
        # What a SIGTERM's drain does first.
        await server.set_ready(False)
        server.refuse_new_calls()
        database.answering = True
        checks = database.checks
        await poll(lambda: database.checks, lambda n: n >= checks + 3, "three more checks")
        assert await health_of(channel, QUOTE_SERVICE) == NOT_SERVING
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_tracked_for_the_block_only_and_nothing_without_a_check(server, channel) -> None:
    database = FakeDatabase(answering=False)
    async with store_readiness_tracked(
        server, database.check, interval=INTERVAL, name="quote store"
    ):
        await readiness_becomes(channel, NOT_SERVING)
    # Cancelled and finished with the block: readiness is left as it was.
    assert not [t for t in asyncio.all_tasks() if "track_store_readiness" in repr(t.get_coro())]
    database.answering = True
    assert await health_of(channel, QUOTE_SERVICE) == NOT_SERVING

    await server.set_ready(True)
    async with store_readiness_tracked(server, None, interval=INTERVAL, name="quote store"):
        assert await health_of(channel, QUOTE_SERVICE) == SERVING


async def test_store_check_pings_what_can_be_pinged() -> None:
    pinged: list[str] = []

    class Pinged:
        def __init__(self, name: str) -> None:
            self.name = name

        async def ping(self) -> None:
            pinged.append(self.name)

    assert store_check(MemoryJobStore()) is None
    assert store_check() is None
    check = store_check(Pinged("logs"), MemoryJobStore(), Pinged("jobs"))
    assert check is not None
    await check()
    assert pinged == ["logs", "jobs"]


# -- readiness made of conditions ---------------------------------------------------


async def test_ready_only_while_every_condition_holds() -> None:
    target = RecordingTarget()
    readiness = Readiness(target, ("downstream", "store"))
    assert readiness.unmet == {"downstream", "store"}

    await readiness.set("store", True)
    # Not ready yet: the downstream has not been seen.
    assert target.sets == [False]
    await readiness.set("downstream", True)
    assert target.sets == [False, True]
    assert readiness.unmet == frozenset()

    # Either failing is enough; the other coming back is not.
    await readiness.set("store", False)
    await readiness.set("downstream", False)
    await readiness.set("store", True)
    assert target.sets == [False, True, False]
    assert readiness.unmet == {"downstream"}
    await readiness.condition("downstream").set_ready(True)
    assert target.sets == [False, True, False, True]

    with pytest.raises(KeyError):
        await readiness.set("disk", True)
    with pytest.raises(KeyError):
        readiness.condition("disk")


async def test_the_downstream_and_the_store_both_decide(
    server, channel, downstream_server, downstream
) -> None:
    await server.set_ready(False)
    database = FakeDatabase()
    task = asyncio.create_task(
        track_downstream_and_store_readiness(
            server, downstream, database.check, interval=INTERVAL, name="processor store"
        )
    )
    try:
        await readiness_becomes(channel, SERVING)

        # The database goes away: not ready, though the downstream is.
        database.answering = False
        await readiness_becomes(channel, NOT_SERVING)
        # The downstream goes away too, then comes back: still not ready.
        await downstream_server.set_ready(False)
        await poll(downstream.is_ready, False.__eq__, "the downstream not ready")
        await downstream_server.set_ready(True)
        await poll(downstream.is_ready, True.__eq__, "the downstream ready again")
        checks = database.checks
        await poll(lambda: database.checks, lambda n: n >= checks + 3, "three more checks")
        assert await health_of(channel, QUOTE_SERVICE) == NOT_SERVING
        # The database answers again: ready.
        database.answering = True
        await readiness_becomes(channel, SERVING)

        # The downstream goes away: not ready, though the database answers.
        await downstream_server.set_ready(False)
        await readiness_becomes(channel, NOT_SERVING)
        await downstream_server.set_ready(True)
        await readiness_becomes(channel, SERVING)
        assert await health_of(channel, "") == SERVING
    finally:
        task.cancel()
        await asyncio.wait([task])


# -- a real database ----------------------------------------------------------------


@pytest.mark.postgres
async def test_the_postgres_stores_ping_their_database() -> None:
    async with fresh_database() as url:
        jobs = PostgresJobStore(url)
        logs = PostgresLogStore(url)
        # Not open: it cannot be reached.
        with pytest.raises(StoreError, match="reach"):
            await jobs.ping()
        await jobs.open()
        await logs.open()
        try:
            await jobs.ping()
            await logs.ping()
            target = RecordingTarget()
            check = store_check(logs, jobs)
            assert check is not None
            task = asyncio.create_task(
                track_store_readiness(target, check, interval=INTERVAL, name="processor store")
            )
            try:
                await ready_is(target, True)
                # Its pool closed, as when the database is gone: not ready.
                await jobs.close()
                await ready_is(target, False)
            finally:
                task.cancel()
                await asyncio.wait([task])
        finally:
            await logs.close()
            await jobs.close()
        with pytest.raises(StoreError, match="reach"):
            await logs.ping()
