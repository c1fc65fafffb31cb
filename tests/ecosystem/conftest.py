"""Fixtures for the ecosystem tests; the machinery is in support.py."""

import json
import shutil
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from ecosystem.support import BufCurl, Services, buf_executable, three_services

# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def buf() -> BufCurl:
    return BufCurl(buf_executable())


@pytest.fixture(scope="session")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not on PATH (make test needs npm, which comes with it)")
    return executable


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    """The three services, started once for the module's tests. The quote service
    prices with tests/support/quote_plugins.py's scripted processor (ordinary names are rated
    as usual; "slow…" never finishes, "fail…" always fails), with short retry backoffs."""
    data_dir = tmp_path_factory.mktemp("services")
    scripted = ("--processor", "support.quote_plugins:scripted")
    backoff = ("--backoff-base", "0.01", "--backoff-cap", "0.02")
    async with three_services(data_dir, *scripted, *backoff) as services:
        yield services


@pytest.fixture
def service_logs(services: Services) -> Iterator[None]:
    """On a failing test, the services' last log lines are worth having: print them
    (pytest shows captured output only for failures)."""
    yield
    for process in services.processes:
        # Less the downstream health checks, which come every 50 ms.
        records = [r for r in process.log if r.get("method") != "/grpc.health.v1.Health/Check"]
        for record in records[-20:]:
            print(json.dumps(record), file=sys.stderr)
