"""quoteflow stats --watch: the three services' counters refreshed live until Ctrl-C
(here, the command's task cancelled, as asyncio.run does on SIGINT)."""

import asyncio
import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from support.processor_harness import processor_harness
from support.quote_harness import submission

from quote_svc.service import binding
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.server import start_server

QUOTE_GET_STATS = "/quoteflow.quote.v1.QuoteService/GetStats"
# Longest a test waits for the refresh it expects before it fails.
WAIT_SECONDS = 10.0


async def refresh_where(running, done: Callable[[Any], bool], what: str) -> Any:
    """The first JSON line the watch printed (or prints within the deadline) for
    which done(line) holds."""
    seen = 0
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                lines = await running.stdout.wait_for_lines(seen + 1)
                for line in lines[seen:]:
                    refresh = json.loads(line)
                    if done(refresh):
                        return refresh
                seen = len(lines)
    except TimeoutError:
        last = running.stdout.lines()[-1:] or ["nothing"]
        raise AssertionError(f"no refresh showed {what}; the last was {last[0]}") from None


async def stopped(running) -> int:
    """Ctrl-C: the exit code once the watch has ended."""
    running.task.cancel()
    result = await running.result()
    assert result.stderr == ""
    return result.code


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def queue_two(quote) -> None:
    """A quote held while it is priced (processing) and one behind it (pending):
    the quote fixture has one worker."""
    quote.rating.gate("Ada")
    await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Ada")))
    await quote.rating.wait_started("Ada")
    await quote.stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission("Bob")))


async def test_json_watch_follows_the_quote_queue_through_its_stream(
    order_cli, quote, caplog, rpc_answers
):
    caplog.set_level(logging.INFO, logger="service_runtime.rpc")
    stream_closed = rpc_answers("WatchStats", "CANCELLED")
    running = order_cli.start("--json", "stats", "--watch", "--interval", "0.1")
    first = await refresh_where(running, lambda r: True, "anything")
    assert set(first) == {"quote", "processor", "requestor"}
    assert first["quote"]["pending_count"] == 0
    assert first["processor"]["order_queues_count"] == 0
    assert first["requestor"]["max_concurrent_tasks"] == 10

    await queue_two(quote)
    changed = await refresh_where(
        running,
        lambda r: r["quote"]["pending_count"] == 1 and r["quote"]["processing_count"] == 1,
        "one quote pending and one processing",
    )
    assert changed["requestor"]["max_concurrent_tasks"] == 10
    assert await stopped(running) == 0
    # The quote service's row came from WatchStats, closed with the watch; never polled.
    await stream_closed.wait()
    methods = [getattr(r, "fields", {}).get("method") for r in caplog.records]
    assert QUOTE_GET_STATS not in methods


async def test_an_unreachable_processor_is_shown_while_the_quote_numbers_update(cli, quote):
    # The cli fixture's processor and requestor addresses refuse connections.
    running = cli.start("--json", "stats", "--watch", "--interval", "0.1")
    first = await refresh_where(running, lambda r: True, "anything")
    assert first["processor"]["error"]["code"] == "UNAVAILABLE"
    assert first["requestor"]["error"]["code"] == "UNAVAILABLE"
    assert first["quote"]["pending_count"] == 0

    await queue_two(quote)
    changed = await refresh_where(
        running, lambda r: r["quote"]["pending_count"] == 1, "one quote pending"
    )
    assert changed["processor"]["error"]["service"] == "processor"
    assert await stopped(running) == 0


async def test_a_service_that_comes_back_is_shown_again(cli_at, quote):
    port = free_port()
    running = cli_at(
        quote=quote.server.address, processor=f"127.0.0.1:{port}", requestor=f"127.0.0.1:{port}"
    ).start("--json", "stats", "--watch", "--interval", "0.1")
    await refresh_where(running, lambda r: "error" in r["processor"], "the processor unreachable")
    async with processor_harness(quote.server.address, port=port):
        back = await refresh_where(
            running, lambda r: "error" not in r["processor"], "the processor back"
        )
        assert back["processor"]["order_queues_count"] == 0
        assert await stopped(running) == 0


async def test_a_broken_quote_stream_is_shown_and_opened_again(cli_at, quote, dead_address):
    # A second server for the quote fixture's queue, on a port it can be started on again.
    port = free_port()
    server = await start_server([binding(quote.queue)], host="127.0.0.1", port=port)
    running = cli_at(quote=server.address, processor=dead_address, requestor=dead_address).start(
        "--json", "stats", "--watch", "--interval", "0.1"
    )
    try:
        await refresh_where(running, lambda r: "pending_count" in r["quote"], "the quote stats")
        await server.stop(None)
        await refresh_where(running, lambda r: "error" in r["quote"], "the quote stream broken")
        server = await start_server([binding(quote.queue)], host="127.0.0.1", port=port)
        await queue_two(quote)
        await refresh_where(
            running, lambda r: r["quote"].get("pending_count") == 1, "the quote stream again"
        )
        assert await stopped(running) == 0
    finally:
        await server.stop(None)


async def test_people_at_a_terminal_see_one_table_redrawn_on_a_screen_of_its_own(
    cli, quote, monkeypatch
):
    # As if stdout were a terminal (rich's own switch).
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    running = cli.start("stats", "--watch", "--interval", "0.1")
    async with asyncio.timeout(WAIT_SECONDS):
        while running.stdout.getvalue().count("Ctrl-C quits") < 2:
            await running.stdout.wait_for_lines(len(running.stdout.lines()) + 1)
    assert await stopped(running) == 0
    screen = running.stdout.getvalue()
    enter, leave = "\x1b[?1049h", "\x1b[?1049l"
    # Into the terminal's alternate screen, as top, and out of it again at the end.
    assert screen.startswith(enter)
    assert screen.endswith(leave)
    assert screen.count(enter) == screen.count(leave) == 1
    for counter in ("pending", "unreachable", "processor"):
        assert counter in screen


async def test_into_a_file_each_refresh_is_one_more_table(cli, quote):
    running = cli.start("stats", "--watch", "--interval", "0.1")
    async with asyncio.timeout(WAIT_SECONDS):
        while running.stdout.getvalue().count("every 0.1 s") < 2:
            await running.stdout.wait_for_lines(len(running.stdout.lines()) + 1)
    assert await stopped(running) == 0
    tables = running.stdout.getvalue()
    assert "\x1b[" not in tables
    assert "Ctrl-C quits" not in tables
    assert tables.count("quoteflow") >= 2


@pytest.mark.parametrize("interval", ["0", "0.05", "60.5", "-1", "nan", "soon"])
async def test_an_interval_out_of_bounds_is_refused(cli, interval):
    result = await cli("--json", "stats", "--watch", "--interval", interval)
    assert result.code == 2
    assert result.stdout == ""
    error = result.error()
    assert error["code"] == "USAGE"
    assert "--interval" in error["message"]


async def test_an_interval_without_watch_is_refused(cli):
    result = await cli("stats", "--interval", "5")
    assert result.code == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == "quoteflow: stats: --interval applies to --watch (see quoteflow stats --help)\n"
    )


async def test_the_bounds_of_the_interval_are_accepted(cli):
    for interval in ("0.1", "60"):
        running = cli.start("--json", "stats", "--watch", "--interval", interval)
        await refresh_where(running, lambda r: True, f"a refresh every {interval} s")
        assert await stopped(running) == 0
