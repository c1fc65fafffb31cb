"""`make durability-check`: nothing the quote service acknowledged is lost to kill -9.

It starts the quote service with one worker on a fresh SQLite database, pricing
with paced() (the rating engine, slowed so that the worker drains far more
slowly than clients submit), submits 1,000 quotes, and kills the process with
SIGKILL once every one is acknowledged. The kill must land while at least half
of them are still PENDING, by the service's own GetStats just before it, or the
check fails, saying so: after a kill that found the queue drained, recovery has
nothing to prove. It starts the service again on the same database, now with
the ordinary rating processor, since what is checked is the store, not the
pricing, and waits until every acknowledged quote is COMPLETED, each with its
result.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

import grpc

from quote_svc.domain import QuoteResult, Submission
from quote_svc.processors import rating_processor
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc

DEADLINE_SECONDS = 120.0
# One worker prices 50 quotes a second: 1,000 take 20 s, while clients have them
# all acknowledged in a second or two, or in several on a loaded machine.
PACE_SECONDS = 0.02
# The first service loads paced() from this file, found on its PYTHONPATH.
PACED_PROCESSOR = f"{Path(__file__).stem}:paced"


async def paced(submission: Submission) -> QuoteResult:
    """The rating processor, PACE_SECONDS slower."""
    await asyncio.sleep(PACE_SECONDS)
    return await rating_processor(submission)


def kill_verdict(pending: int, acknowledged: int) -> str | None:
    """Why a kill with this many of the acknowledged quotes PENDING tests too
    little (fewer than half were), or None when it tests what it should."""
    if pending * 2 >= acknowledged:
        return None
    return (
        f"the kill came when only {pending} of the {acknowledged} acknowledged quotes "
        "were pending, so the restart had too little to recover; run it again on a "
        "less busy machine"
    )


# Readers of the services' logs, kept so they are not collected mid-read.
_readers: set[asyncio.Task[None]] = set()


async def start(data_dir: Path, *options: str) -> tuple[asyncio.subprocess.Process, str]:
    """The quote service on a free port; returns it and its address once it serves."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
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
        *options,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
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
    process, address = await start(data_dir, "--processor", PACED_PROCESSOR)
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
        f"{stats.completed_count} were completed, {stats.processing_count} processing "
        f"and {stats.pending_count} pending"
    )
    if (problem := kill_verdict(stats.pending_count, len(ids))) is not None:
        print(f"FAILED: {problem}")
        return 1

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
