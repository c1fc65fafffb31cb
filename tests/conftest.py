"""Fixtures every test folder can use."""

import functools
import os
from collections.abc import AsyncIterator

import pytest
from support.quote_harness import QuoteHarness, StartQuote, start_quote_harness, stop_quote_harness

# The service processes the tests start serve no /metrics unless a test asks:
# the default ports (9091-9094) would be taken by the first, or by make run.
for _prefix in ("QUOTE", "PROCESSOR", "REQUESTOR", "CONSOLE"):
    os.environ.setdefault(f"{_prefix}_METRICS_PORT", "0")


@pytest.fixture
async def start_quote() -> AsyncIterator[StartQuote]:
    """Start quote services in-process on port 0; stopped after the test."""
    started: list[QuoteHarness] = []
    yield functools.partial(start_quote_harness, started)
    for harness in started:
        await stop_quote_harness(harness)


#: Folders whose tests drive the project's surroundings, marked by the folder's name.
_FOLDER_MARKERS = {"ecosystem": "ecosystem", "deploy": "deploy", "benchmarks": "bench"}
#: Words in a test module's source that mean its tests start real processes.
_PROCESS_WORDS = ("service_process", "service_stack", "subprocess", "run_to_exit")
#: Words in a test module's source that mean its tests drive a browser.
_BROWSER_WORDS = ("playwright",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by what it needs: the folder's marker for ecosystem,
    deploy and bench tests; `process` for a module that starts processes (and
    `browser` too for one that drives Chromium); else `unit`, the quick half
    that `make test-fast` runs."""
    sources: dict[str, str] = {}
    for item in items:
        path = item.path
        folder = next((_FOLDER_MARKERS[p] for p in path.parts if p in _FOLDER_MARKERS), None)
        if folder is not None:
            item.add_marker(folder)
            continue
        source = sources.setdefault(str(path), path.read_text())
        if any(word in source for word in _BROWSER_WORDS):
            # Besides `process`: a browser test starts the console and the services too.
            item.add_marker("browser")
        process = any(word in source for word in _PROCESS_WORDS + _BROWSER_WORDS)
        item.add_marker("process" if process else "unit")
