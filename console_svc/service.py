"""Runs the console: binds its port, serves the application with uvicorn, and
drains on SIGTERM or SIGINT."""

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from console_svc.app import build_app
from console_svc.bridge import PROCESSOR, QUOTE, REQUESTOR, Bridge, Downstream
from console_svc.config import ConsoleConfig
from console_svc.drain import DrainGate
from service_runtime.access import Access
from service_runtime.channels import downstream_security
from service_runtime.config import DEFAULT_MAX_STREAMS_PER_CALLER
from service_runtime.http_serving import UvicornServer, bind_socket, start_serving
from service_runtime.metrics.endpoint import serving_metrics
from service_runtime.metrics.service_metrics import ServiceMetrics, metrics_for
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE
from service_runtime.tls import file_stamps
from service_runtime.tokens import TokenVerifier

logger = logging.getLogger("console_svc.service")


@dataclass
class RunningConsole:
    """A serving console and what a test may want to reach."""

    bridge: Bridge
    #: host:port it serves on (the port the system chose, when 0 was asked for).
    address: str
    _server: UvicornServer
    _serving: "asyncio.Task[None]"

    @property
    def gate(self) -> DrainGate:
        return self.bridge.gate

    async def drain(self, grace: float) -> None:
        """Refuse new calls (UNAVAILABLE), give the unary calls in flight up to
        grace seconds, end the open streams with UNAVAILABLE so that their pages
        reconnect, then stop serving."""
        self.gate.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.gate.unary_drained()
        self.gate.close_streams()
        await self.stop()

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.shield(self._serving)

    def cut_grace(self) -> None:
        """End the open streams now, and let uvicorn cut what is still being written."""
        self.gate.close_streams()
        self._server.force_exit = True


#: How often the console looks for a renewed certificate.
CERTIFICATE_CHECK_SECONDS = 5.0


async def _reload_certificate(served: uvicorn.Config, config: ConsoleConfig) -> None:
    """Load a renewed certificate into the context uvicorn serves with: new
    connections get it, open ones keep theirs (grpc's listeners do the same)."""
    paths = (config.tls_cert_file, config.tls_key_file)
    seen = file_stamps(*paths)
    while True:
        await asyncio.sleep(CERTIFICATE_CHECK_SECONDS)
        try:
            now = file_stamps(*paths)
            if now != seen and served.ssl is not None:
                served.ssl.load_cert_chain(*paths)
                seen = now
                logger.info(
                    "certificate reloaded", extra={FIELDS_ATTRIBUTE: {"cert_file": paths[0]}}
                )
        except (OSError, ssl.SSLError) as error:
            # Mid-rotation: the next check finds the files whole.
            logger.warning(
                "certificate not reloaded", extra={FIELDS_ATTRIBUTE: {"error": str(error)}}
            )


async def _show_ready(bridge: Bridge, metrics: ServiceMetrics) -> None:
    metrics.set_ready(not bridge.gate.draining)


def _has_page(page_dir: Path) -> bool:
    return (page_dir / "index.html").is_file()


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@contextlib.asynccontextmanager
async def running(
    config: ConsoleConfig, metrics: ServiceMetrics | None = None
) -> AsyncIterator[RunningConsole]:
    """Bind the port (OSError naming it if it cannot be), open a channel to each
    service (its calls counted in metrics, when given), serve until the block
    exits, then stop and close the channels."""
    security = downstream_security(config)
    access = None
    verifier = TokenVerifier.for_options(config)
    if verifier is not None:
        # The services cap each caller's streams; the console checks who may call.
        access = Access(verifier, max_streams_per_caller=DEFAULT_MAX_STREAMS_PER_CALLER)
    sock = bind_socket(config.host, config.port)
    client = metrics.client if metrics is not None else None
    downstreams = [
        Downstream(QUOTE, config.quote_address, security, client),
        Downstream(PROCESSOR, config.processor_address, security, client),
        Downstream(REQUESTOR, config.requestor_address, security, client),
    ]
    bridge = Bridge(downstreams, DrainGate(), call_deadline=config.call_deadline, access=access)
    if metrics is not None:
        # Ready as /healthz/ready says: while not draining.
        metrics.on_scrape(lambda: _show_ready(bridge, metrics))
    app = build_app(bridge, config.page_dir, health_timeout=config.health_timeout)
    server = UvicornServer(
        uvicorn.Config(
            app,
            log_config=None,  # its records go through the JSON logging of the root logger
            access_log=False,
            lifespan="off",
            # After the drain has ended the streams, the rest of the grace for
            # responses still being written.
            timeout_graceful_shutdown=max(int(config.grace_seconds), 1),
            ssl_certfile=config.tls_cert_file or None,
            ssl_keyfile=config.tls_key_file or None,
            ssl_ca_certs=config.tls_client_ca_file or None,
            ssl_cert_reqs=ssl.CERT_REQUIRED if config.tls_client_ca_file else ssl.CERT_NONE,
        )
    )
    try:
        serving = await start_serving(server, sock)
    except BaseException:
        sock.close()
        for downstream in downstreams:
            await downstream.close()
        raise
    try:
        address = _address(config.host, sock.getsockname()[1])
        scheme = "https" if config.tls else "http"
        if config.tls:
            reloading = asyncio.create_task(_reload_certificate(server.config, config))
        if not _has_page(config.page_dir):
            logger.warning(
                "no web page to serve: run make web",
                extra={FIELDS_ATTRIBUTE: {"static_dir": str(config.page_dir)}},
            )
        logger.info(
            "serving",
            extra={
                FIELDS_ATTRIBUTE: {
                    "address": address,
                    "url": f"{scheme}://{address}/",
                    "services": {d.service.name: d.address for d in downstreams},
                }
            },
        )
        yield RunningConsole(bridge, address, server, serving)
    finally:
        if config.tls:
            reloading.cancel()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        sock.close()
        for downstream in downstreams:
            await downstream.close()


async def serve(config: ConsoleConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain; a second signal cuts the grace."""
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    metrics = metrics_for(config)
    try:
        async with (
            serving_metrics(metrics, host=config.host, port=config.metrics_port),
            running(config, metrics) as console,
        ):
            first = await signals.get()
            logger.info(
                "draining",
                extra={
                    FIELDS_ATTRIBUTE: {"signal": first.name, "grace_seconds": config.grace_seconds}
                },
            )
            draining = asyncio.create_task(console.drain(config.grace_seconds))
            impatience = asyncio.create_task(signals.get())
            await asyncio.wait({draining, impatience}, return_when=asyncio.FIRST_COMPLETED)
            if not draining.done():
                logger.warning("second signal: cutting the grace period")
                console.cut_grace()
                await draining
            impatience.cancel()
            logger.info("drained")
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
