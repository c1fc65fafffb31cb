"""Figure 9: the console: its page's JavaScript, how soon a status change
reaches the page, and what an open page costs the bridge.

A quote service (store sqlite, bench.console_processor) and the console,
processes of their own; the processor and requestor are not needed and not
started (the console serves while a service is away).

- The page's JavaScript: web/dist/app.js as `make web` built it, and gzipped.
- Status-change latency: headless Chromium submits console_quotes quotes one
  at a time (light load) on the submit view; for each PROCESSING and COMPLETED
  entry of the timeline, the page's time of showing it (data-seen) less the
  quote service's time of the transition (started_at, completed_at).
  Target: p99 < 100 ms.
- Memory per open page: console_pages WatchMessage streams held open through
  the bridge (Connect, as the page calls it) on messages that stay PROCESSING;
  the console's RSS growth over the streams.

Without Chromium (or the built page) the figures are null, saying why.
"""

import asyncio
import contextlib
import gzip
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import grpc
import grpc.aio

from bench import servers
from bench.context import Run
from bench.fig_memory import rss_mib
from bench.procs import free_port
from bench.results import Figure, Target
from bench.stats import median, percentile
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from tools.launcher import Launched

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "web" / "dist" / "app.js"
CHROMIUM = Path("/usr/bin/chromium")
LATENCY_TARGET = Target("value", "<=", 100.0)
CONSOLE_NAMES = (
    "console.js_bytes",
    "console.js_gzip_bytes",
    "console.status_change_p50_ms",
    "console.status_change_p99_ms",
    "console.kib_per_open_page",
)
#: How long the console may take to answer /healthz/ready, and a page to show a quote.
READY_DEADLINE = 30.0
SHOWN_MS = 15_000


def _missing() -> str:
    if not SCRIPT.is_file():
        return f"the page is not built ({SCRIPT.relative_to(REPO)}: run `make web`)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (`make browser`)"
    return ""


async def _ready(address: str, child: Launched) -> None:
    """Wait until the console answers GET /healthz/ready with 200."""
    host, port = address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_DEADLINE
    while True:
        if child.process.returncode is not None or loop.time() > deadline:
            raise RuntimeError(f"the console did not become ready:\n{child.tail()}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET /healthz/ready HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
            await writer.drain()
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _console(run: Run, quote: Launched) -> AsyncIterator[tuple[str, Launched]]:
    address = f"127.0.0.1:{free_port()}"
    closed = f"127.0.0.1:{free_port()}"
    argv = [
        "-m",
        "console_svc",
        "--port",
        address.rsplit(":", 1)[1],
        "--log-level",
        "WARNING",
        "--quote-address",
        quote.address,
        "--processor-address",
        closed,
        "--requestor-address",
        closed,
    ]
    child = await run.processes.start("console", argv)
    try:
        await _ready(address, child)
        yield address, child
    finally:
        await run.processes.stop(child)


async def _latencies(url: str, quotes: int) -> list[float]:
    from playwright.async_api import async_playwright, expect

    samples: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            for n in range(quotes):
                await page.goto(f"{url}/#/submit")
                form = page.locator("section:not([hidden])")
                await form.get_by_label("Applicant's full name").fill(f"Latency {n}")
                await form.get_by_label("Property address").fill("1 Figure Lane")
                await form.get_by_role("button", name="Submit").click()
                done = page.locator("#timeline li[data-status=COMPLETED]")
                await expect(done).to_have_count(1, timeout=SHOWN_MS)
                for item in await page.locator("#timeline li").all():
                    if await item.get_attribute("data-status") not in ("PROCESSING", "COMPLETED"):
                        continue
                    seen = int(await item.get_attribute("data-seen") or 0) / 1000
                    stamp = await item.locator("time").get_attribute("datetime") or ""
                    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    samples.append((seen - at) * 1000)
        finally:
            await browser.close()
    return samples


async def _kib_per_page(console: str, console_pid: int, quote: str, pages: int) -> float:
    from connectrpc.client import ConnectClient
    from connectrpc.compat import google_protobuf_binary_codec

    from console_svc.bridge import QUOTE, method_info

    watch = method_info(QUOTE.descriptor.methods_by_name["WatchMessage"])
    async with grpc.aio.insecure_channel(quote) as channel:
        stub = pb_grpc.QuoteServiceStub(channel)
        ids = []
        for n in range(pages):
            submission = pb.Submission(
                applicant_name=f"held {n}", address="1 Memory Way", coverage_amount=100_000
            )
            ids.append(
                (await stub.SubmitQuote(pb.SubmitQuoteRequest(submission=submission))).message.id
            )
        before = rss_mib(console_pid)
        opened = asyncio.Event()
        first_answers = 0
        clients = [
            ConnectClient(f"http://{console}", codec=google_protobuf_binary_codec())
            for _ in range(pages)
        ]

        async def hold(client: ConnectClient, message_id: str) -> None:
            nonlocal first_answers
            request = pb.WatchMessageRequest(id=message_id)
            async for _ in client.execute_server_stream(request=request, method=watch):
                first_answers += 1
                if first_answers == pages:
                    opened.set()

        holders = [asyncio.create_task(hold(c, i)) for c, i in zip(clients, ids, strict=True)]
        try:
            await asyncio.wait_for(opened.wait(), READY_DEADLINE)
            after = rss_mib(console_pid)
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
            for client in clients:
                await client.close()
            for message_id in ids:
                await stub.CancelMessage(pb.CancelMessageRequest(id=message_id))
    return (after - before) * 1024 / pages


async def figure_console(run: Run) -> None:
    sizes = run.sizes
    run.say("figure 9: the console")
    missing = _missing()
    script = SCRIPT.read_bytes() if SCRIPT.is_file() else b""
    p50 = p99 = per_page = None
    params = {"quotes": sizes.console_quotes, "pages": sizes.console_pages}
    if not missing:
        spec = servers.quote(
            "console-quote",
            args=(
                "--processor",
                "bench.console_processor:price",
                "--workers",
                str(sizes.console_pages + 2),
            ),
        )
        (quote,) = await run.servers.start_all(spec)
        try:
            async with _console(run, quote) as (address, console):
                samples = await _latencies(f"http://{address}", sizes.console_quotes)
                p50 = median(samples)
                p99 = percentile(samples, 0.99)
                params["status_changes"] = len(samples)
                per_page = await _kib_per_page(
                    address, console.pid, quote.address, sizes.console_pages
                )
        finally:
            await run.servers.stop(quote)
    run.add(
        Figure(
            "console.js_bytes",
            len(script) or None,
            "bytes",
            note=missing if not script else "the minified bundle",
            params=params,
        ),
        Figure(
            "console.js_gzip_bytes",
            len(gzip.compress(script, 9)) if script else None,
            "bytes",
            note=missing if not script else "gzip -9 of the minified bundle",
            params=params,
        ),
        Figure("console.status_change_p50_ms", p50, "ms", note=missing, params=params),
        Figure(
            "console.status_change_p99_ms",
            p99,
            "ms",
            target=LATENCY_TARGET,
            note=missing or "the service's transition to the page showing it, one quote at a time",
            params=params,
        ),
        Figure(
            "console.kib_per_open_page",
            per_page,
            "KiB",
            note=missing or "the console's RSS growth per open WatchMessage stream",
            params=params,
        ),
    )
