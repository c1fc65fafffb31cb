"""The console's ASGI application: the bridge's RPCs under /quoteflow.*, the
health endpoints, and the built web page for every other path."""

import asyncio
from pathlib import Path
from typing import cast

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console_svc.bridge import Bridge, BridgeApplication, Downstream

_SERVING = health_pb2.HealthCheckResponse.SERVING


class _Revalidated:
    """Static files that the browser checks again (its ETag) before each use:
    a page rebuilt by `make web` is seen at the next load, not after a cache
    heuristic runs out."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_revalidated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-cache")]
            await send(message)

        await self._app(scope, receive, send_revalidated)


async def _service_health(downstream: Downstream, within: float) -> str:
    """SERVING, NOT_SERVING or UNREACHABLE: what the service's own health says
    of its service (its readiness)."""
    request = health_pb2.HealthCheckRequest(service=downstream.service.descriptor.full_name)
    stub = health_pb2_grpc.HealthStub(downstream.channel)
    try:
        answer = await stub.Check(request, timeout=within)
    except grpc.aio.AioRpcError:
        return "UNREACHABLE"
    return "SERVING" if answer.status == _SERVING else "NOT_SERVING"


def build_app(bridge: Bridge, static_dir: Path, *, health_timeout: float) -> Starlette:
    """The application: the bridge, /healthz/live, /healthz/ready, /healthz and
    the page in static_dir (its index.html at /)."""

    async def live(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def ready(_: Request) -> Response:
        # Ready while not draining, whatever the services say: the page is of
        # use with a service away, since it says which one is and why.
        if bridge.gate.draining:
            return PlainTextResponse("draining", status_code=503)
        return PlainTextResponse("ok")

    async def health(_: Request) -> Response:
        states = await asyncio.gather(
            *(_service_health(d, health_timeout) for d in bridge.downstreams)
        )
        return JSONResponse(
            {
                "status": "NOT_SERVING" if bridge.gate.draining else "SERVING",
                "open_streams": bridge.gate.open_streams,
                "services": {
                    d.service.name: {"address": d.address, "status": state}
                    for d, state in zip(bridge.downstreams, states, strict=True)
                },
            }
        )

    # cast: connectrpc types its ASGI callables itself; they are the same protocol.
    rpc = cast(ASGIApp, BridgeApplication(bridge))
    routes = [
        Route("/healthz/live", live),
        Route("/healthz/ready", ready),
        Route("/healthz", health),
        *(Mount(f"/{d.service.descriptor.full_name}", app=rpc) for d in bridge.downstreams),
        Mount("/", app=_Revalidated(StaticFiles(directory=static_dir, html=True, check_dir=False))),
    ]
    return Starlette(routes=routes)
