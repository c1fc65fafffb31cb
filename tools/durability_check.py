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
import signal
import sys
import tempfile
from pathlib import Path

import grpc

from quote_svc.domain import QuoteResult, Submission
from quote_svc.processors import rating_processor
from quoteflow.quote.v1 import quote_service_pb2 as pb
from quoteflow.quote.v1 import quote_service_pb2_grpc as pb_grpc
from tools.launcher import Launched, LaunchError, launch, service_argv

DEADLINE_SECONDS = 120.0
# One worker prices 50 quotes a second: 1,000 take 20 s, while clients have them
# all acknowledged in a second or two, or in several on a loaded machine.
PACE_SECONDS = 0.02
# The first service loads paced() from this module (the launcher puts the repo
# root on its PYTHONPATH).
PACED_PROCESSOR = "tools.durability_check:paced"


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


async def start(data_dir: Path, *options: str) -> Launched:
    """The quote service, with one worker, on a free port, once it serves."""
    argv = service_argv("quote_svc", "--workers", "1", *options, data_dir=data_dir)
    service = await launch(argv, name="quote_svc")
    try:
        await service.serving(deadline=DEADLINE_SECONDS)
    except LaunchError as error:
        await service.stop(signal.SIGKILL)
        raise SystemExit(f"the quote service did not start: {error}") from None
    return service


async def check(count: int, data_dir: Path) -> int:
    service = await start(data_dir, "--processor", PACED_PROCESSOR)
    async with grpc.aio.insecure_channel(service.address) as channel:
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
        await service.stop(signal.SIGKILL)
    ids = [a.message.id for a in answers]
    print(
        f"acknowledged {len(ids)} quotes; killed with SIGKILL when "
        f"{stats.completed_count} were completed, {stats.processing_count} processing "
        f"and {stats.pending_count} pending"
    )
    if (problem := kill_verdict(stats.pending_count, len(ids))) is not None:
        print(f"FAILED: {problem}")
        return 1

    service = await start(data_dir)
    try:
        async with grpc.aio.insecure_channel(service.address) as channel:
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
        await service.stop()
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
