"""What the tests that run services as replicas over one PostgreSQL database
share: short leases, and quote replicas pricing with the scripted processor."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from support.service_process import Launched, running_service

#: tests/, put on a child's PYTHONPATH so that it can load support's plugins.
TESTS = str(Path(__file__).resolve().parents[1])
#: Short leases, so a killed replica's claims come back within the test.
LEASES = ("--lease-seconds", "2", "--heartbeat-seconds", "0.5")


def quote_replica(
    url: str, workers: int, *args: str
) -> contextlib.AbstractAsyncContextManager[Launched]:
    """A quote replica over url with `workers` workers (0: it only accepts),
    pricing by support.quote_plugins:scripted."""
    return running_service(
        "quote_svc",
        "--store",
        "postgres",
        "--processor",
        "support.quote_plugins:scripted",
        "--workers",
        str(workers),
        *LEASES,
        *args,
        QUOTE_DATABASE_URL=url,
        PYTHONPATH=TESTS,
    )


@contextlib.asynccontextmanager
async def quote_replicas(
    url: str, workers: list[int], *args: str
) -> AsyncIterator[list[tuple[Launched, pb_grpc.QuoteServiceStub]]]:
    """One quote replica per entry of workers (its worker count), all over url
    and all given args."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for count in workers:
            service = await stack.enter_async_context(quote_replica(url, count, *args))
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(service.address))
            started.append((service, pb_grpc.QuoteServiceStub(channel)))
        yield started
