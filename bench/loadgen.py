"""The load generator: a process of its own, so its CPU is not the server's.

    python -m bench.loadgen

It reads one JSON command per line on stdin and answers each with one JSON
line on stdout, so one process serves every run of a bench (starting Python
and gRPC for each run would cost more than a smoke run has). Commands:

- {"cmd": "unary", "target", "method", "concurrency", "seconds", "warmup",
  "channels"}: connects, warms up, answers {"ready": true}, then waits for
  {"cmd": "go"} (so several generators start together), runs a closed loop of
  `concurrency` callers for `seconds` and answers the calls that finished in
  the window, the errors, and every latency in microseconds.
- {"cmd": "quotes", "target" | "targets", "count", "concurrency", "deadline",
  ["batch", "wait"]} (SubmitQuote, or BatchSubmitQuotes of batch items) and
  {"cmd": "arq", "redis", "queue", "count", "concurrency", "deadline"}: after
  "ready"/"go", `concurrency` callers share `count` submissions; then it polls
  until every job has completed and answers the submit and total seconds.
  Both peers are driven by the same loop; so are {"cmd": "dramatiq", "redis",
  "queue", ...} (whose client is synchronous: the callers are threads) and
  {"cmd": "procrastinate", "database", "queue", "pool_size", ...}.
- {"cmd": "proposals", "target", "orders", "count" | "rate" + "seconds", ...}:
  SubmitProposal to the processor, closed-loop (concurrency) or open-loop at
  a fixed rate; the proposal id carries the send time for the stream clients.
- {"cmd": "stats", "target", "calls"}: GetStats one call after another, every
  latency (no "ready"/"go").

Requests are serialised once and responses left undecoded (raw bytes) where
the answer is not needed, so the client spends as little as it can per call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc.aio

from bench.procs import set_parent_death_signal
from quoteflow.processor.v1 import processor_service_pb2 as ppb
from quoteflow.quote.v1 import quote_service_pb2 as pb
from service_runtime.channels import PLAINTEXT, client_security, open_channel

QUOTE_SERVICE = "/quoteflow.quote.v1.QuoteService/"
PROCESSOR_SERVICE = "/quoteflow.processor.v1.ProcessorService/"
#: Each caller stops at the deadline or after this many calls, whichever first.
MAX_CALLS_PER_CALLER = 10_000_000
CALL_TIMEOUT = 30.0
#: Open-loop proposals in flight at most; beyond it the driver waits (and says so).
MAX_IN_FLIGHT = 2_000

SUBMISSION = pb.Submission(
    applicant_name="Ada Lovelace", address="12 St James Square, London", coverage_amount=250_000
)

Command = dict[str, Any]


def emit(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


async def read_command() -> Command | None:
    """The next command from stdin; None at its end (the bench has gone)."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        return None
    command: Command = json.loads(line)
    return command


async def wait_for_go() -> None:
    command = await read_command()
    if command is None or command.get("cmd") != "go":
        raise SystemExit(f"expected go, got {command!r}")


def channels(
    target: str, count: int, security: dict[str, str] | None = None
) -> list[grpc.aio.Channel]:
    """security: client_security's arguments, for a server with TLS and tokens."""
    secured = client_security(**security) if security else PLAINTEXT
    # A local subchannel pool gives each channel its own TCP connection, as
    # separate clients would have (and lets SO_REUSEPORT spread them).
    return [
        open_channel(target, security=secured, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]


async def _request_for(method: str, channel: grpc.aio.Channel) -> bytes:
    if method == "SubmitQuote":
        return pb.SubmitQuoteRequest(submission=SUBMISSION).SerializeToString()
    if method == "GetStats":
        return pb.GetStatsRequest().SerializeToString()
    if method == "GetMessage":
        # A message that exists: submitted once here, read back by every call.
        submit = channel.unary_unary(
            QUOTE_SERVICE + "SubmitQuote", request_serializer=None, response_deserializer=None
        )
        answer = await submit(pb.SubmitQuoteRequest(submission=SUBMISSION).SerializeToString())
        message_id = pb.SubmitQuoteResponse.FromString(answer).message.id
        return pb.GetMessageRequest(id=message_id).SerializeToString()
    raise ValueError(f"unknown method {method}")


async def closed_loop(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[int, array[int], float]:
    """`concurrency` callers calling back to back until the deadline:
    (errors, latencies in µs of the calls that succeeded, elapsed seconds)."""
    latencies: array[int] = array("q")
    errors = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def caller() -> None:
        nonlocal errors
        for _ in range(MAX_CALLS_PER_CALLER):
            if loop.time() >= deadline:
                return
            started = time.perf_counter_ns()
            try:
                await call()
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append((time.perf_counter_ns() - started) // 1000)

    began = loop.time()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return errors, latencies, loop.time() - began


async def unary(command: Command) -> dict[str, Any]:
    chans = channels(command["target"], command.get("channels", 1), command.get("security"))
    try:
        request = await _request_for(command["method"], chans[0])
        stubs = [
            ch.unary_unary(
                QUOTE_SERVICE + command["method"],
                request_serializer=None,
                response_deserializer=None,
            )
            for ch in chans
        ]
        turn = itertools.cycle(stubs)

        def call() -> Awaitable[object]:
            return next(turn)(request, timeout=CALL_TIMEOUT)

        concurrency = command["concurrency"]
        await closed_loop(call, concurrency, command.get("warmup", 0.5))
        emit({"ready": True})
        await wait_for_go()
        errors, latencies, elapsed = await closed_loop(call, concurrency, command["seconds"])
        return {
            "ok": len(latencies),
            "errors": errors,
            "seconds": elapsed,
            "latencies_us": list(latencies),
        }
    finally:
        await asyncio.gather(*(ch.close(grace=None) for ch in chans))


async def shared_count(
    submit: Callable[[int], Awaitable[object]], count: int, concurrency: int
) -> int:
    """`concurrency` callers submitting numbers 0..count-1 between them; returns the errors."""
    numbers = iter(range(count))
    errors = 0

    async def caller() -> None:
        nonlocal errors
        for number in numbers:
            try:
                await submit(number)
            except Exception:
                errors += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return errors


async def poll_until(done: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    """Poll done() every 5 ms until it says so or the loop time passes deadline."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        if await done():
            return True
        await asyncio.sleep(0.005)
    return False


def _quote_calls(command: Command) -> tuple[str, list[bytes], list[int]]:
    """The method, and each call's request and items: count SubmitQuotes, or with
    "batch" the count in BatchSubmitQuotes of batch items (the last one shorter)."""
    request = pb.SubmitQuoteRequest(submission=SUBMISSION)
    count, batch = command["count"], command.get("batch", 0)
    if not batch:
        return "SubmitQuote", [request.SerializeToString()] * count, [1] * count
    sizes = [min(batch, count - start) for start in range(0, count, batch)]
    encoded = {
        size: pb.BatchSubmitQuotesRequest(requests=[request] * size).SerializeToString()
        for size in set(sizes)
    }
    return "BatchSubmitQuotes", [encoded[size] for size in sizes], sizes


async def quotes(command: Command) -> dict[str, Any]:
    """SubmitQuote (or BatchSubmitQuotes, with "batch") from `concurrency` callers
    sharing the count, the calls spread round-robin over "targets" (one connection
    each; "target" for one); then, unless "wait" is false, GetStats on the first
    until every item has reached a final state."""
    targets = command.get("targets") or [command["target"]]
    chans = [channels(target, 1)[0] for target in targets]
    try:
        method, requests, items = _quote_calls(command)
        stubs = [
            channel.unary_unary(
                QUOTE_SERVICE + method, request_serializer=None, response_deserializer=None
            )
            for channel in chans
        ]
        stats = chans[0].unary_unary(
            QUOTE_SERVICE + "GetStats",
            response_deserializer=pb.GetStatsResponse.FromString,
            request_serializer=None,
        )
        empty = pb.GetStatsRequest().SerializeToString()
        before = await stats(empty)
        count = command["count"]
        lost = 0

        async def submit(number: int) -> object:
            nonlocal lost
            try:
                return await stubs[number % len(stubs)](requests[number], timeout=CALL_TIMEOUT)
            except Exception:
                lost += items[number]
                raise

        emit({"ready": True})
        await wait_for_go()
        loop = asyncio.get_running_loop()
        began = loop.time()
        calls_failed = await shared_count(submit, len(requests), command["concurrency"])
        submitted = loop.time() - began
        last = [before]
        polls = 0

        async def all_final() -> bool:
            nonlocal polls
            polls += 1
            last[0] = now = await stats(empty)
            done = now.completed_count + now.failed_count
            return bool(done - before.completed_count - before.failed_count >= count - lost)

        finished = True
        if command.get("wait", True):
            finished = await poll_until(all_final, began + command["deadline"])
        return {
            "submit_seconds": submitted,
            "total_seconds": loop.time() - began,
            "errors": lost,
            "failed_calls": calls_failed,
            "calls": len(requests),
            "polls": polls,
            "finished": finished,
            "completed": last[0].completed_count - before.completed_count,
        }
    finally:
        await asyncio.gather(*(channel.close(grace=None) for channel in chans))


async def get_stats(command: Command) -> dict[str, Any]:
    """{"cmd": "stats", "target", "calls", "warmup"}: GetStats one call after
    another (no "ready"/"go"); every latency in µs and the stats last read."""
    channel = channels(command["target"], 1)[0]
    try:
        stats = channel.unary_unary(
            QUOTE_SERVICE + "GetStats", request_serializer=None, response_deserializer=None
        )
        empty = pb.GetStatsRequest().SerializeToString()
        for _ in range(command.get("warmup", 50)):
            await stats(empty, timeout=CALL_TIMEOUT)
        latencies: array[int] = array("q")
        answer = b""
        for _ in range(command["calls"]):
            started = time.perf_counter_ns()
            answer = await stats(empty, timeout=CALL_TIMEOUT)
            latencies.append((time.perf_counter_ns() - started) // 1000)
        last = pb.GetStatsResponse.FromString(answer)
        return {
            "latencies_us": list(latencies),
            "pending": last.pending_count,
            "completed": last.completed_count,
        }
    finally:
        await channel.close(grace=None)


async def arq_jobs(command: Command) -> dict[str, Any]:
    from arq import create_pool
    from arq.connections import RedisSettings

    queue = command["queue"]
    pool = await create_pool(RedisSettings.from_dsn(command["redis"]), default_queue_name=queue)
    try:
        run = uuid.uuid4().hex[:12]
        emit({"ready": True})
        await wait_for_go()
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def enqueue(number: int) -> object:
            job = await pool.enqueue_job("noop", _job_id=f"{run}-{number}")
            if job is None:
                raise RuntimeError("not enqueued")
            return job

        errors = await shared_count(enqueue, command["count"], command["concurrency"])
        submitted = loop.time() - began

        # arq keeps a job in the queue's sorted set until its worker has
        # finished it (finish_job removes it there), so an empty set is "all done".
        async def all_done() -> bool:
            return int(await pool.zcard(queue)) == 0

        finished = await poll_until(all_done, began + command["deadline"])
        total = loop.time() - began
        completed = 0
        async for key in pool.scan_iter(match=f"arq:result:{run}-*", count=1000):
            completed += 1
            await pool.delete(key)
        return {
            "submit_seconds": submitted,
            "total_seconds": total,
            "errors": errors,
            "finished": finished,
            "completed": completed,
        }
    finally:
        await pool.aclose()


async def dramatiq_jobs(command: Command) -> dict[str, Any]:
    """dramatiq's client is synchronous: the callers are threads sharing the count."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    queue = command["queue"]
    # dramatiq's broker is untyped, and its actor() types only the bare decorator.
    redis_broker: Any = RedisBroker
    broker = redis_broker(url=command["redis"])
    actor = dramatiq.actor(broker=broker, actor_name="noop", queue_name=queue)(lambda: None)
    numbers = iter(range(command["count"]))
    take = threading.Lock()

    def caller() -> int:
        errors = 0
        while True:
            with take:
                if next(numbers, None) is None:
                    return errors
            try:
                actor.send()
            except Exception:
                errors += 1

    try:
        concurrency = command["concurrency"]
        executor = ThreadPoolExecutor(concurrency)
        emit({"ready": True})
        await wait_for_go()
        loop = asyncio.get_running_loop()
        began = loop.time()
        callers = [asyncio.wrap_future(executor.submit(caller)) for _ in range(concurrency)]
        errors = sum(await asyncio.gather(*callers))
        executor.shutdown()
        submitted = loop.time() - began
        messages, dead = f"dramatiq:{queue}.msgs", f"dramatiq:{queue}.XQ"

        # A worker's ack deletes the message from the queue's hash (a failure
        # moves it to the dead-letter queue, .XQ), so an empty hash is "all done".
        async def all_done() -> bool:
            return int(broker.client.hlen(messages)) == 0

        finished = await poll_until(all_done, began + command["deadline"])
        total = loop.time() - began
        failed = int(broker.client.zcard(dead))
        return {
            "submit_seconds": submitted,
            "total_seconds": total,
            "errors": errors,
            "finished": finished,
            "completed": command["count"] - errors - failed if finished else 0,
        }
    finally:
        for key in broker.client.scan_iter(match=f"dramatiq:{queue}*", count=1000):
            broker.client.delete(key)
        broker.close()


async def procrastinate_jobs(command: Command) -> dict[str, Any]:
    from procrastinate import App, PsycopgConnector

    queue, size = command["queue"], command["pool_size"]
    app = App(
        connector=PsycopgConnector(conninfo=command["database"], min_size=size, max_size=size)
    )
    async with app.open_async():
        deferrer = app.configure_task("noop", queue=queue)
        emit({"ready": True})
        await wait_for_go()
        loop = asyncio.get_running_loop()
        began = loop.time()
        errors = await shared_count(
            lambda _: deferrer.defer_async(), command["count"], command["concurrency"]
        )
        submitted = loop.time() - began
        connector = app.connector
        where = "FROM procrastinate_jobs WHERE queue_name = %(queue)s"

        # Jobs stay in the table (procrastinate's default); one still todo or
        # doing means the run is not done (a partial index covers that test).
        async def all_done() -> bool:
            row = await connector.execute_query_one_async(
                f"SELECT EXISTS (SELECT 1 {where} AND status IN ('todo', 'doing')) AS open",
                queue=queue,
            )
            return not row["open"]

        finished = await poll_until(all_done, began + command["deadline"])
        total = loop.time() - began
        row = await connector.execute_query_one_async(
            f"SELECT count(*) AS done {where} AND status = 'succeeded'", queue=queue
        )
        return {
            "submit_seconds": submitted,
            "total_seconds": total,
            "errors": errors,
            "finished": finished,
            "completed": int(row["done"]),
        }


def _proposal(order: str, number: int) -> bytes:
    # The send time rides in the proposal id, so the watcher that receives the
    # event can tell the end-to-end latency without talking to this process.
    return ppb.SubmitProposalRequest(
        order_req_id=order, proposal_id=f"s{time.time_ns()}-{number}", submission=SUBMISSION
    ).SerializeToString()


async def proposals(command: Command) -> dict[str, Any]:
    """Closed loop (count, concurrency) or open loop (rate, seconds) of SubmitProposal,
    spreading proposals round-robin over the orders prefix0..prefix{orders-1}."""
    channel = channels(command["target"], 1)[0]
    try:
        submit = channel.unary_unary(
            PROCESSOR_SERVICE + "SubmitProposal",
            request_serializer=None,
            response_deserializer=None,
        )
        prefix, orders = command["prefix"], command["orders"]
        latencies: array[int] = array("q")
        errors = 0

        async def one(number: int) -> None:
            nonlocal errors
            started = time.perf_counter_ns()
            try:
                await submit(_proposal(f"{prefix}{number % orders}", number), timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError:
                errors += 1
                return
            latencies.append((time.perf_counter_ns() - started) // 1000)

        loop = asyncio.get_running_loop()
        began = loop.time()
        if "rate" in command:
            late = await _open_loop(one, command["rate"], command["seconds"])
        else:
            late = 0
            errors += await shared_count(one, command["count"], command["concurrency"])
        return {
            "ok": len(latencies),
            "errors": errors,
            "late": late,
            "seconds": loop.time() - began,
            "latencies_us": list(latencies),
        }
    finally:
        await channel.close(grace=None)


async def _open_loop(
    one: Callable[[int], Coroutine[Any, Any, None]], rate: float, seconds: float
) -> int:
    """Start one(i) at start + i/rate for `seconds`, whatever the answers take;
    returns how many starts were later than 10 ms (the driver could not keep up)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight: set[asyncio.Task[None]] = set()
    late = 0
    for number in range(int(rate * seconds)):
        due = start + number / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.01:
            late += 1
        while len(in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one(number))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=CALL_TIMEOUT)
    return late


COMMANDS: dict[str, Callable[[Command], Awaitable[dict[str, Any]]]] = {
    "unary": unary,
    "quotes": quotes,
    "stats": get_stats,
    "arq": arq_jobs,
    "dramatiq": dramatiq_jobs,
    "procrastinate": procrastinate_jobs,
    "proposals": proposals,
}


async def serve() -> None:
    while (command := await read_command()) is not None:
        try:
            answer = await COMMANDS[command["cmd"]](command)
        except Exception as error:
            answer = {"error": f"{type(error).__name__}: {error}"}
        emit(answer)


def main() -> None:
    set_parent_death_signal()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
