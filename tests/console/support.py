"""The console's tests' machinery: the three services and the console as real
processes, and the browser, which is skipped with its reason where none can be
had (a failure with QUOTEFLOW_REQUIRE_BROWSER=1, as in CI)."""

import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.service_process import Launched, launch, running_service

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
CHROMIUM = Path("/usr/bin/chromium")
WEB_DIST = REPO / "web" / "dist"
#: Where the browser tests leave their screenshots (gitignored).
ARTIFACTS = REPO / "test-artifacts" / "console"


@dataclass
class Stack:
    quote: Launched
    processor: Launched
    requestor: Launched
    console: Launched

    @property
    def url(self) -> str:
        return f"http://{self.console.address}"

    @property
    def processes(self) -> list[Launched]:
        return [self.quote, self.processor, self.requestor, self.console]


def console_argv(*args: str, quote: str, processor: str, requestor: str) -> list[str]:
    """`python -m console_svc` on a free port (args may name another: the last --port wins)."""
    return [
        sys.executable,
        "-m",
        "console_svc",
        "--port",
        "0",
        "--quote-address",
        quote,
        "--processor-address",
        processor,
        "--requestor-address",
        requestor,
        *args,
    ]


@contextlib.asynccontextmanager
async def running_console(
    *args: str, quote: str, processor: str, requestor: str
) -> AsyncIterator[Launched]:
    console = await launch(
        console_argv(*args, quote=quote, processor=processor, requestor=requestor),
        name="console_svc",
    )
    try:
        await console.serving()
        yield console
    finally:
        await console.stop()


@contextlib.asynccontextmanager
async def running_stack(*quote_args: str) -> AsyncIterator[Stack]:
    """quote (memory store, console.plugins:paced), processor, requestor and the
    console, each its own process, on free ports."""
    plugins = {"PYTHONPATH": str(TESTS)}
    memory = ("--store", "memory")
    async with (
        running_service(
            "quote_svc", *memory, "--processor", "console.plugins:paced", *quote_args, **plugins
        ) as quote,
        running_service("processor_svc", *memory, "--quote-address", quote.address) as processor,
        running_service(
            "requestor_svc", *memory, "--processor-address", processor.address
        ) as requestor,
        running_console(
            quote=quote.address, processor=processor.address, requestor=requestor.address
        ) as console,
    ):
        yield Stack(quote, processor, requestor, console)


def closed_address() -> str:
    """host:port where nothing listens: a port the system gave, then released."""
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def browser_or_skip() -> Path:
    """Chromium's path, with the page built; else skip (or fail, in CI) saying why."""
    reason = None
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (`make browser` installs Debian's chromium as root)"
    elif not (WEB_DIST / "index.html").is_file():
        reason = f"the page is not built in {WEB_DIST.relative_to(REPO)} (run `make web`)"
    if reason is None:
        return CHROMIUM
    if os.environ.get("QUOTEFLOW_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (QUOTEFLOW_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)
