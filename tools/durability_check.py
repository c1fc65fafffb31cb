"""`make durability-check`: nothing the quote service acknowledged is lost to kill -9.

It starts the quote service with one worker on a fresh SQLite database,
submits 1,000 quotes, kills the process with SIGKILL while most of them are
still waiting, starts it again on the same database, and waits until every
acknowledged quote is COMPLETED, each with its result.
"""

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from pathlib import Path

import grpc

from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

DEADLINE_SECONDS = 120.0


# Readers of the services' logs, kept so they are not collected mid-read.
_readers: set[asyncio.Task[None]] = set()


async def start(data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    """The quote service on a free port; returns it and its address once it serves."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quote_svc",
        "--port",
        "0",
        "--workers",
        "1",
        "--data-dir",
        str(data_dir),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(DEADLINE_SECONDS):
        while line := await process.stderr.readline():
            record = json.loads(line)
            if record.get("msg") == "serving":
                reader = asyncio.create_task(_drain_output(process.stderr))
                _readers.add(reader)
                reader.add_done_callback(_readers.discard)
                return process, record["address"]
    raise SystemExit(f"the quote service did not start: exit code {await process.wait()}")


async def _drain_output(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def check(count: int, data_dir: Path) -> int:
    process, address = await start(data_dir)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.QuoteServiceStub(channel)
        requests = [
            pb.SubmitQuoteRequest(
                submission=pb.Submission(
                    applicant_name=f"Applicant {n}",
                    address=f"{n} Durable Street",
                    coverage_amount=100_000 + n,
                )
            )
            for n in range(count)
        ]
        answers = await asyncio.gather(*(stub.SubmitQuote(r, timeout=60) for r in requests))
        stats = await stub.GetStats(pb.GetStatsRequest(), timeout=10)
        process.send_signal(signal.SIGKILL)
    await process.wait()
    ids = [a.message.id for a in answers]
    print(
        f"acknowledged {len(ids)} quotes; killed with SIGKILL when "
        f"{stats.completed_count} were completed and {stats.pending_count} pending"
    )

    process, address = await start(data_dir)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.QuoteServiceStub(channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_SECONDS
            while (stats := await stub.GetStats(pb.GetStatsRequest())).completed_count < count:
                if loop.time() > deadline:
                    print(f"FAILED: only {stats.completed_count} of {count} completed")
                    return 1
                await asyncio.sleep(0.05)
            for message_id in ids:
                got = (await stub.GetMessage(pb.GetMessageRequest(id=message_id))).message
                if got.status != pb.MESSAGE_STATUS_COMPLETED or not got.result.annual_premium_cents:
                    print(f"FAILED: {message_id} is {pb.MessageStatus.Name(got.status)}")
                    return 1
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    print(f"after the restart all {count} completed, each with its premium: OK")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="quotes to submit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        sys.exit(asyncio.run(check(args.count, Path(data_dir))))


if __name__ == "__main__":
    main()
