"""A process holding many WatchOrder streams open, and timing what they receive.

    python -m bench.stream_client

Commands, one JSON object a line on stdin, each answered by one on stdout:

- {"cmd": "open", "target", "prefix", "start", "count", "per_channel"}: open
  `count` streams on orders prefix{start}… , `per_channel` streams to a
  connection (gRPC servers often cap streams per HTTP/2 connection). Streams
  are opened in paced batches: a grpc.aio server handed thousands of new
  streams at once cancels those it cannot take up in time (the client sees
  CANCELLED), so a stream that fails while opening is opened again, a
  bounded number of times; the answer says how many had to be.
- {"cmd": "reset"} / {"cmd": "report"}: forget / answer what was received:
  per event, the delivery latency (the event's created_at, stamped by the
  server when it appended the event, to receipt here) and the end-to-end
  latency (the send time the load generator put in the proposal id to receipt
  here). Same machine, same clock (time.time).
- {"cmd": "close"}: cancel every stream and close the connections.
- {"cmd": "replay", "target", "order"}: one stream from the order's first
  event to its end, as fast as the server sends it; answers events and seconds.
  Responses stay undecoded, so the client's protobuf cost is not measured.
- {"cmd": "stall", "target", "order"}: open one WatchOrder stream and never
  read it (a watcher whose client stopped reading), until "close".
- {"cmd": "follow", "target", "order"} then {"cmd": "followed", "timeout"}:
  watch an order while it is being filled; answer the events and the seconds
  from the first to the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from array import array
from typing import Any

import grpc
import grpc.aio

from bench.procs import set_parent_death_signal
from quoteflow.processor.v1 import processor_service_pb2 as ppb

WATCH = "/quoteflow.processor.v1.ProcessorService/WatchOrder"
#: Streams opened per batch, and the pause after each batch.
OPEN_BATCH = 50
OPEN_PAUSE = 0.025
#: After opening, how long to wait for refusals, and how often to retry them.
REFUSAL_WAIT = 0.5
REOPEN_ROUNDS = 10
REPLAY_TIMEOUT = 120.0


def _channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def _request(order: str) -> bytes:
    return ppb.WatchOrderRequest(order_req_id=order).SerializeToString()


class Holder:
    def __init__(self) -> None:
        self.channels: list[grpc.aio.Channel] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.delivery_us: array[int] = array("q")
        self.end_to_end_us: array[int] = array("q")
        self.errors = 0
        #: Orders whose stream failed (not closed by us), to open again.
        self.failed: list[tuple[Any, str]] = []
        self.closing = False
        self.error_codes: dict[str, int] = {}
        self.following: asyncio.Task[list[float]] | None = None
        self.stalled: list[Any] = []

    async def open(self, command: dict[str, Any]) -> dict[str, Any]:
        per_channel = command["per_channel"]
        pending: list[tuple[Any, str]] = []
        watch = None
        for number in range(command["count"]):
            if number % per_channel == 0:
                channel = _channel(command["target"])
                self.channels.append(channel)
                watch = channel.unary_stream(
                    WATCH,
                    response_deserializer=ppb.WatchOrderResponse.FromString,
                    request_serializer=None,
                )
            pending.append((watch, f"{command['prefix']}{command['start'] + number}"))
        await self._start(pending)
        reopened = 0
        for _ in range(REOPEN_ROUNDS):
            await asyncio.sleep(REFUSAL_WAIT)
            if not self.failed:
                break
            retry, self.failed = self.failed, []
            reopened += len(retry)
            await self._start(retry)
        return {"opened": command["count"], "reopened": reopened, "failing": len(self.failed)}

    async def _start(self, streams: list[tuple[Any, str]]) -> None:
        for number, (watch, order) in enumerate(streams):
            task = asyncio.create_task(self._follow(watch, order))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            if number % OPEN_BATCH == OPEN_BATCH - 1:
                await asyncio.sleep(OPEN_PAUSE)

    async def _follow(self, watch: Any, order: str) -> None:
        try:
            async for response in watch(_request(order)):
                now = time.time_ns()
                event = response.event
                self.delivery_us.append((now - event.created_at.ToNanoseconds()) // 1000)
                sent = event.proposal_id.partition("-")[0]
                if sent.startswith("s") and sent[1:].isdigit():
                    self.end_to_end_us.append((now - int(sent[1:])) // 1000)
        except grpc.aio.AioRpcError as error:
            if not self.closing:
                self.errors += 1
                code = error.code().name
                self.error_codes[code] = self.error_codes.get(code, 0) + 1
                self.failed.append((watch, order))

    def stall(self, command: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(command["target"])
        self.channels.append(channel)
        watch = channel.unary_stream(
            WATCH, response_deserializer=ppb.WatchOrderResponse.FromString, request_serializer=None
        )
        # grpc.aio starts the call at once; it is kept, and never read.
        self.stalled.append(watch(_request(command["order"])))
        return {"stalled": len(self.stalled)}

    def reset(self, command: dict[str, Any]) -> dict[str, Any]:
        self.delivery_us = array("q")
        self.end_to_end_us = array("q")
        self.errors = 0
        return {"ok": True}

    def report(self, command: dict[str, Any]) -> dict[str, Any]:
        return {
            "delivery_us": list(self.delivery_us),
            "end_to_end_us": list(self.end_to_end_us),
            "errors": self.errors,
            "error_codes": self.error_codes,
            "open": len(self.tasks),
        }

    async def close(self, command: dict[str, Any] | None = None) -> dict[str, Any]:
        count = len(self.tasks)
        self.closing = True
        for task in list(self.tasks):
            task.cancel()
        for call in self.stalled:
            call.cancel()
        self.stalled = []
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close(grace=None) for channel in self.channels))
        self.channels = []
        self.failed = []
        self.closing = False
        return {"closed": count}

    async def replay(self, command: dict[str, Any]) -> dict[str, Any]:
        async with _channel(command["target"]) as channel:
            watch = channel.unary_stream(WATCH, request_serializer=None, response_deserializer=None)
            events = 0
            began = time.perf_counter()
            async with asyncio.timeout(REPLAY_TIMEOUT):
                async for _ in watch(_request(command["order"])):
                    events += 1
            return {"events": events, "seconds": time.perf_counter() - began}

    async def follow(self, command: dict[str, Any]) -> dict[str, Any]:
        async def receive() -> list[float]:
            times: list[float] = []
            async with _channel(command["target"]) as channel:
                watch = channel.unary_stream(
                    WATCH, request_serializer=None, response_deserializer=None
                )
                async for _ in watch(_request(command["order"])):
                    times.append(time.perf_counter())
            return times

        self.following = asyncio.create_task(receive())
        return {"ok": True}

    async def followed(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.following is not None
        try:
            times = await asyncio.wait_for(self.following, command["timeout"])
        finally:
            self.following = None
        seconds = times[-1] - times[0] if len(times) > 1 else 0.0
        return {"events": len(times), "seconds": seconds}


async def serve() -> None:
    holder = Holder()
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            try:
                answer = getattr(holder, command["cmd"])(command)
                if asyncio.iscoroutine(answer):
                    answer = await answer
            except Exception as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        with contextlib.suppress(Exception):
            await holder.close()


def main() -> None:
    set_parent_death_signal()
    asyncio.run(serve())


if __name__ == "__main__":
    main()
