"""The console's figures (issue 13), printed as JSON: not a test, and not timed
by one. Run from the repository root, after `make web`:

    .venv/bin/python tests/console/figures.py [--quotes 40] [--streams 200]

- the page's JavaScript, minified and gzip-compressed;
- status-change latency: from the quote service's transition (the message's
  started_at and completed_at) to the page showing it (its timeline's
  data-seen), p50 and p99, at light load (one quote at a time);
- the bridge's memory per open page: the console's RSS growth with many
  WatchMessage streams open, each what one page following a message holds.
"""

import argparse
import asyncio
import gzip
import json
import statistics
import sys
from datetime import datetime
from pathlib import Path

import grpc
import psutil

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

from connectrpc.client import ConnectClient  # noqa: E402
from connectrpc.compat import google_protobuf_binary_codec  # noqa: E402
from console.support import WEB_DIST, browser_or_skip, running_stack  # noqa: E402
from playwright.async_api import async_playwright, expect  # noqa: E402

from console_svc.bridge import QUOTE, method_info  # noqa: E402
from quoteflow.quote.v1 import quote_service_pb2 as quote_pb  # noqa: E402
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc  # noqa: E402


def bundle_bytes() -> dict[str, int]:
    script = (WEB_DIST / "app.js").read_bytes()
    return {"app_js_bytes": len(script), "app_js_gzip_bytes": len(gzip.compress(script, 9))}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def latency(url: str, quotes: int) -> dict[str, float]:
    samples: list[float] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(browser_or_skip()), headless=True, args=["--no-sandbox"]
        )
        page = await browser.new_page()
        for n in range(quotes):
            await page.goto(f"{url}/#/submit")
            await page.locator("#applicant-name").fill(f"Latency {n}")
            await page.locator("#address").fill("1 Figure Lane")
            await page.locator("#submit-button").click()
            done = page.locator("#timeline li[data-status=COMPLETED]")
            await expect(done).to_have_count(1, timeout=15_000)
            for item in await page.locator("#timeline li").all():
                status = await item.get_attribute("data-status")
                if status not in ("PROCESSING", "COMPLETED"):
                    continue
                seen = int(await item.get_attribute("data-seen") or 0) / 1000
                stamp = await item.locator("time").get_attribute("datetime") or ""
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                samples.append((seen - at) * 1000)
        await browser.close()
    return {
        "status_changes": len(samples),
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
    }


async def memory_per_stream(address: str, quote_address: str, streams: int, pid: int) -> dict:
    process = psutil.Process(pid)
    async with grpc.aio.insecure_channel(quote_address) as channel:
        stub = quote_grpc.QuoteServiceStub(channel)
        ids = []
        for n in range(streams):
            submission = quote_pb.Submission(
                applicant_name=f"slow {n}", address="1 Memory Way", coverage_amount=100_000
            )
            queued = await stub.SubmitQuote(quote_pb.SubmitQuoteRequest(submission=submission))
            ids.append(queued.message.id)
        before = process.memory_info().rss
        first_seen = asyncio.Event()
        seen = 0
        clients = [
            ConnectClient(f"http://{address}", codec=google_protobuf_binary_codec())
            for _ in range(streams)
        ]

        async def hold(client: ConnectClient, message_id: str) -> None:
            nonlocal seen
            stream = client.execute_server_stream(
                request=quote_pb.WatchMessageRequest(id=message_id),
                method=method_info(QUOTE.descriptor.methods_by_name["WatchMessage"]),
            )
            async for _ in stream:
                seen += 1
                if seen == streams:
                    first_seen.set()

        holders = [asyncio.create_task(hold(c, i)) for c, i in zip(clients, ids, strict=True)]
        await asyncio.wait_for(first_seen.wait(), 60)
        after = process.memory_info().rss
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        for client in clients:
            await client.close()
        for message_id in ids:
            await stub.CancelMessage(quote_pb.CancelMessageRequest(id=message_id))
    return {
        "open_streams": streams,
        "console_rss_before_mib": round(before / 2**20, 1),
        "console_rss_after_mib": round(after / 2**20, 1),
        "kib_per_open_page": round((after - before) / streams / 1024, 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=40)
    parser.add_argument("--streams", type=int, default=200)
    options = parser.parse_args()
    figures: dict[str, object] = {"bundle": bundle_bytes()}
    # Light load: one quote at a time. The memory run's "slow…" quotes each
    # hold a worker, so there is one for each.
    async with running_stack("--workers", str(options.streams + 2)) as stack:
        figures["latency"] = await latency(stack.url, options.quotes)
        figures["memory"] = await memory_per_stream(
            stack.console.address, stack.quote.address, options.streams, stack.console.pid
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
