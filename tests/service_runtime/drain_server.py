"""A service process for the signal tests: serves until signalled, then drains.

Usage: drain_server.py GRACE_SECONDS. Prints "port N" once serving. GetStats
prints "in flight" when it starts and answers once a line arrives on stdin,
so the test decides when the in-flight call ends. The drain callback prints
"drained".
"""

import asyncio
import sys

from quoteflow.quote.v1 import quote_service_pb2 as quote_pb2
from quoteflow.quote.v1 import quote_service_pb2_grpc as quote_grpc
from service_runtime.rpc_logging import configure_logging
from service_runtime.server import ServiceBinding, run, serve_until_signalled, start_server


class HeldStats(quote_grpc.QuoteServiceServicer):
    def __init__(self, release: asyncio.StreamReader) -> None:
        self._release = release

    async def GetStats(self, request, context):
        print("in flight", flush=True)
        await self._release.readline()
        return quote_pb2.GetStatsResponse(workers=7)


async def main() -> None:
    configure_logging("INFO")
    grace = float(sys.argv[1])
    # A pipe reader rather than a thread, so a call cut by the drain leaves
    # no thread blocked on stdin behind it.
    release = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(release), sys.stdin
    )
    servicer = HeldStats(release)
    running = await start_server(
        [
            ServiceBinding(
                quote_pb2.DESCRIPTOR.services_by_name["QuoteService"].full_name,
                lambda s: quote_grpc.add_QuoteServiceServicer_to_server(servicer, s),
            )
        ],
        host="127.0.0.1",
        port=0,
    )

    async def on_drain(grace_left: float) -> None:
        print("drained", flush=True)

    print(f"port {running.port}", flush=True)
    await serve_until_signalled(running, grace=grace, on_drain=on_drain)


if __name__ == "__main__":
    run(main)
