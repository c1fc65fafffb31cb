"""/metrics over HTTP, on the process's own event loop (uvicorn), so that the
gauges are set from the service's stats just before each scrape is rendered,
with no thread reading what the loop writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from prometheus_client import make_asgi_app

from service_runtime.http_serving import UvicornServer, bind_socket, start_serving
from service_runtime.metrics.service_metrics import ServiceMetrics
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE

logger = logging.getLogger("service_runtime.metrics")

PATH = "/metrics"
# A scrape whose stats cannot be read in this long shows the last ones read.
_REFRESH_TIMEOUT = 5.0

_Scope = dict[str, Any]


def metrics_app(metrics: ServiceMetrics) -> Any:
    """The ASGI application: GET /metrics, in Prometheus's text format (or
    OpenMetrics, as the scraper's Accept asks); anything else is 404."""
    render = make_asgi_app(metrics.registry)

    async def app(scope: _Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found: try /metrics\n"})
            return
        try:
            async with asyncio.timeout(_REFRESH_TIMEOUT):
                await metrics.refresh()
        # Any failure: the RPC metrics are still worth serving.
        except Exception as error:
            logger.warning(
                "metrics not refreshed", extra={FIELDS_ATTRIBUTE: {"error": repr(error)}}
            )
        await render(scope, receive, send)

    return app


@contextlib.asynccontextmanager
async def serving_metrics(
    metrics: ServiceMetrics | None, *, host: str, port: int
) -> AsyncIterator[int | None]:
    """Serve metrics on host:port while the block runs; answers the bound port
    (None when metrics or port is off). OSError naming the port if it is taken."""
    if metrics is None or port == 0:
        yield None
        return
    sock = bind_socket(host, port, what="metrics_port")
    server = UvicornServer(
        uvicorn.Config(metrics_app(metrics), log_config=None, access_log=False, lifespan="off")
    )
    try:
        serving = await start_serving(server, sock)
    except BaseException:
        sock.close()
        raise
    bound: int = sock.getsockname()[1]
    logger.info(
        "serving metrics", extra={FIELDS_ATTRIBUTE: {"url": f"http://{host}:{bound}{PATH}"}}
    )
    try:
        yield bound
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        sock.close()
