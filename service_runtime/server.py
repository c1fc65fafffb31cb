"""Start a gRPC server with health and reflection, and drain it on SIGTERM or SIGINT."""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # not in grpc-stubs
from grpc_reflection.v1alpha import reflection

from queues.storage import StoreError
from service_runtime.access import Access
from service_runtime.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_STREAMS_PER_CALLER,
    DEFAULT_MAX_STREAMS_PER_CONNECTION,
    ListenerOptions,
    ServerOptions,
    load_config,
)
from service_runtime.drain import DrainGate
from service_runtime.event_loop import loop_factory
from service_runtime.interceptors import RpcInterceptor
from service_runtime.metrics.service_metrics import ServiceMetrics
from service_runtime.rpc_logging import FIELDS_ATTRIBUTE, configure_logging
from service_runtime.supervision import stop_with_supervisor
from service_runtime.tls import ServerTls
from service_runtime.tokens import TokenVerifier
from service_runtime.tracing import configure_tracing, shutdown_tracing

logger = logging.getLogger("service_runtime.server")

C = TypeVar("C", bound=ListenerOptions)

_HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

_SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    # gRPC sets SO_REUSEPORT by default, so a second instance on a taken port
    # would bind "successfully" and silently take half the traffic.
    ("grpc.so_reuseport", 0),
    # WatchMessage-style streams can sit idle for long; pings find clients that
    # vanished without closing their connection, so their streams are cancelled.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Keepalive enforcement: a client pinging more often than every 10 s
    # without data is sent GOAWAY after two strikes, so pings cannot be used
    # to keep the server busy.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServerSecurity:
    """A listener's TLS, who may call it, and what one caller can hold. The
    default is what tests and make run use: plaintext, no tokens, reflection
    on (config.exposure_refusal keeps that to loopback)."""

    tls: ServerTls | None = None
    verifier: TokenVerifier | None = None
    reflection: bool = True
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_streams_per_caller: int = DEFAULT_MAX_STREAMS_PER_CALLER
    max_streams_per_connection: int = DEFAULT_MAX_STREAMS_PER_CONNECTION
    #: A plaintext port serving grpc.health.v1 alone (0: none), for the
    #: kubelet's gRPC probes, which speak neither TLS nor tokens.
    health_port: int = 0

    @classmethod
    def from_options(cls, options: ServerOptions) -> "ServerSecurity":
        """What the options ask for. Reads the certificate and key files, so a
        missing one stops the start (OSError)."""
        tls = None
        if options.tls:
            tls = ServerTls(options.tls_cert_file, options.tls_key_file, options.tls_client_ca_file)
        return cls(
            tls=tls,
            verifier=TokenVerifier.for_options(options),
            reflection=options.reflection,
            max_request_bytes=options.max_request_bytes,
            max_streams_per_caller=options.max_streams_per_caller,
            max_streams_per_connection=options.max_streams_per_connection,
            health_port=options.health_port,
        )

    def server_options(self) -> list[tuple[str, int]]:
        return [
            *_SERVER_OPTIONS,
            # The interceptor refuses what is over max_request_bytes with an
            # ErrorInfo (service_runtime.interceptors); gRPC's own refusal, which
            # carries none, is the backstop for what is far over.
            ("grpc.max_receive_message_length", 2 * self.max_request_bytes),
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
        ]


@dataclass(frozen=True)
class ServiceBinding:
    """One service to serve: its full proto name and how to add its servicer to a server."""

    full_name: str
    register: Callable[[grpc.aio.Server], None]


class RunningServer:
    """A started server, its bound address, and control over its health."""

    def __init__(
        self,
        server: grpc.aio.Server,
        health: health_aio.HealthServicer,
        service_names: Sequence[str],
        host: str,
        port: int,
        gate: DrainGate,
        health_server: grpc.aio.Server | None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._server = server
        self._health_server = health_server
        self._metrics = metrics
        self._gate = gate
        self._health = health
        self._service_names = tuple(service_names)
        #: The bound port: the one chosen by the system when 0 was asked for.
        self.port = port
        self.address = _address(host, port)

    async def set_ready(self, ready: bool) -> None:
        """Readiness: the health of every served service; "" (liveness) is left alone.
        Once draining, a service stays not ready, whatever its downstream does."""
        if ready and self._gate.draining:
            return
        for name in self._service_names:
            await self._health.set(name, _SERVING if ready else _NOT_SERVING)
        if self._metrics is not None:
            self._metrics.set_ready(ready)

    def refuse_new_calls(self) -> None:
        """From now on, answer every new call but health and reflection UNAVAILABLE."""
        self._gate.start()

    async def drain(self, grace: float) -> None:
        """Turn new calls away with UNAVAILABLE, give the unary calls in flight up
        to grace seconds to finish, let the callers settle (DrainGate.settle),
        then stop, giving streams what is left of the grace."""
        self.refuse_new_calls()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._gate.drained()
                await self._gate.settle()
        await self.stop(max(deadline - loop.time(), 0.0))

    async def set_alive(self, alive: bool) -> None:
        """Liveness: the health of the whole server, the service named ""."""
        await self._health.set("", _SERVING if alive else _NOT_SERVING)

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls and give in-flight ones grace seconds (None: none) to finish.
        Refusals a drain held back are answered once the listener is closed.

        Health answers NOT_SERVING for everything from here on, whatever is set later.
        """
        await self._health.enter_graceful_shutdown()
        if self._metrics is not None:
            self._metrics.set_ready(False)
        if self._health_server is not None:
            # Probes see the port close with the main one, not after it.
            await self._health_server.stop(None)
        stopping = asyncio.ensure_future(self._server.stop(grace))
        # The first step of grpc.aio's stop closes the listener and sends every
        # connection a GOAWAY, before it first yields; only then may the held
        # refusals be answered, or their callers' retries would be in transit
        # when the stop cancels what it finds.
        await asyncio.sleep(0)
        self._gate.release()
        await stopping

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped. Safe to cancel."""
        # gRPC awaits its shared shutdown future directly, so cancelling a
        # waiter would cancel that future and make every later stop() raise.
        await asyncio.shield(self._server.wait_for_termination())


class BoundServer:
    """A server that holds its port but serves nothing yet: a service binds
    first, so a port already taken stops it before it reads its store, then
    starts with its servicers once the store is recovered (start). close()
    releases it if it never starts."""

    def __init__(
        self,
        server: grpc.aio.Server,
        gate: DrainGate,
        host: str,
        port: int,
        reflection: bool,
        health_server: grpc.aio.Server | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._server = server
        self._health_server = health_server
        self._metrics = metrics
        self._gate = gate
        self._host = host
        self._reflection = reflection
        self._started = False
        #: The bound port: the one chosen by the system when 0 was asked for.
        self.port = port

    async def start(
        self, bindings: Sequence[ServiceBinding], *, ready: bool = True
    ) -> RunningServer:
        """Serve bindings with health and reflection.

        Liveness ("") starts SERVING; readiness (each binding's name) starts
        SERVING only if ready, so a service that must first reach its downstream
        never answers a readiness probe too early.
        """
        service_names = [binding.full_name for binding in bindings]
        for binding in bindings:
            binding.register(self._server)
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, self._server)
        if self._health_server is not None:
            health_pb2_grpc.add_HealthServicer_to_server(health, self._health_server)
        for name in service_names:
            await health.set(name, _SERVING if ready else _NOT_SERVING)
        if self._metrics is not None:
            self._metrics.set_ready(ready)
        if self._reflection:
            reflection.enable_server_reflection(
                [*service_names, _HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], self._server
            )
        await self._server.start()
        if self._health_server is not None:
            await self._health_server.start()
        self._started = True
        running = RunningServer(
            self._server,
            health,
            service_names,
            self._host,
            self.port,
            self._gate,
            self._health_server,
            self._metrics,
        )
        logger.info(
            "serving",
            extra={FIELDS_ATTRIBUTE: {"address": running.address, "services": service_names}},
        )
        return running

    async def close(self) -> None:
        """Release the port and the server's core resources here, rather than in
        a destructor that may run after the loop closed. A started server is
        stopped through its RunningServer: close() then cuts whatever is left
        (nothing, once it has drained)."""
        if not self._started:
            # grpc.aio's stop() does nothing to a server never started, which
            # would keep the port until the process ends; with no servicer
            # registered, a call in this instant is answered UNIMPLEMENTED.
            await self._server.start()
            if self._health_server is not None:
                await self._health_server.start()
            self._started = True
        if self._health_server is not None:
            await self._health_server.stop(None)
        await self._server.stop(None)


async def bind_server(
    *,
    host: str,
    port: int,
    security: ServerSecurity = ServerSecurity(),
    # type-arg: grpc-stubs makes the class generic; grpc.aio's is not.
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
    metrics: ServiceMetrics | None = None,
) -> BoundServer:
    """A server holding host:port, to be started later, counting its RPCs and
    readiness in metrics (when given). Raises OSError naming the address when
    it cannot be bound, or a certificate file that cannot be read."""
    gate = DrainGate()
    access = Access(security.verifier, max_streams_per_caller=security.max_streams_per_caller)
    credentials = security.tls.credentials() if security.tls is not None else None
    server = grpc.aio.server(
        interceptors=[
            RpcInterceptor(
                gate,
                access,
                max_request_bytes=security.max_request_bytes,
                metrics=metrics.server if metrics is not None else None,
            ),
            *extra_interceptors,
        ],
        options=security.server_options(),
    )
    address = _address(host, port)
    try:
        if credentials is None:
            bound_port = server.add_insecure_port(address)
        else:
            bound_port = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        # Unbound, the server still owns core resources (see BoundServer.close).
        await server.stop(None)
        raise OSError(
            f"cannot listen on {address}: the port is taken or the host is not local"
        ) from error
    health_server = None
    if security.health_port:
        health_server = grpc.aio.server(options=_SERVER_OPTIONS)
        health_address = _address(host, security.health_port)
        try:
            health_server.add_insecure_port(health_address)
        except RuntimeError as error:
            await health_server.stop(None)
            await server.stop(None)
            raise OSError(f"cannot listen on {health_address} (health_port): taken") from error
    return BoundServer(server, gate, host, bound_port, security.reflection, health_server, metrics)


async def start_server(
    bindings: Sequence[ServiceBinding],
    *,
    host: str,
    port: int,
    ready: bool = True,
    security: ServerSecurity = ServerSecurity(),
    # type-arg: grpc-stubs makes the class generic; grpc.aio's is not.
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
    metrics: ServiceMetrics | None = None,
) -> RunningServer:
    """Bind host:port and serve bindings there at once (BoundServer.start)."""
    bound = await bind_server(
        host=host,
        port=port,
        security=security,
        extra_interceptors=extra_interceptors,
        metrics=metrics,
    )
    return await bound.start(bindings, ready=ready)


async def serve_until_signalled(
    server: RunningServer,
    *,
    grace: float,
    on_drain: Callable[[float], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain: readiness off, new calls turned
    away, calls in flight given the grace (RunningServer.drain), then on_drain,
    which is given what is left of the grace: the whole drain fits in one grace.

    A second signal during the drain cuts the grace short. Also returns if the
    server terminates on its own.
    """
    loop = asyncio.get_running_loop()
    signals_received: asyncio.Queue[signal.Signals] = asyncio.Queue()
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, signals_received.put_nowait, signum)
    try:
        first = await _first_signal(signals_received, server)
        if first is None:
            return
        logger.info(
            "draining",
            extra={FIELDS_ATTRIBUTE: {"signal": first.name, "grace_seconds": grace}},
        )
        deadline = loop.time() + grace
        await server.set_ready(False)
        impatience = asyncio.create_task(_cut_grace_on_signal(signals_received, server))
        try:
            await server.drain(grace)
            if on_drain is not None:
                await on_drain(max(deadline - loop.time(), 0.0))
        finally:
            impatience.cancel()
        logger.info("drained")
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


async def work_until_signalled(
    *, grace: float, on_drain: Callable[[float], Awaitable[None]]
) -> None:
    """The serving loop of a process that serves no calls (a worker): wait for
    SIGTERM or SIGINT, then give on_drain the grace. A second signal during the
    drain ends the process as the signal's default does: whatever it still
    holds runs again elsewhere once its leases expire."""
    loop = asyncio.get_running_loop()
    signals_received: asyncio.Queue[signal.Signals] = asyncio.Queue()
    handled = (signal.SIGTERM, signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, signals_received.put_nowait, signum)
    try:
        first = await signals_received.get()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    logger.info(
        "draining", extra={FIELDS_ATTRIBUTE: {"signal": first.name, "grace_seconds": grace}}
    )
    await on_drain(grace)
    logger.info("drained")


def run_service(
    config_type: type[C],
    *,
    env_prefix: str,
    description: str,
    serve: Callable[[C], Awaitable[None]],
    prog: str | None = None,
) -> None:
    """The whole of a service's __main__: its configuration from flags and
    environment, JSON logging, a watch on its supervisor if it has one
    (service_runtime.supervision), then serve(config) until it drains. prog is how
    --help names the command, "python -m quote_svc" say, not "__main__.py"."""
    config = load_config(config_type, env_prefix=env_prefix, description=description, prog=prog)
    configure_logging(config.log_level)
    configure_tracing(f"quoteflow-{env_prefix.lower()}")
    stop_with_supervisor()
    try:
        run(lambda: serve(config), event_loop=config.event_loop)
    except (StoreError, OSError) as error:
        # A store it cannot use or a port it cannot bind: say so in one line
        # and exit non-zero, rather than start in a state nobody asked for.
        logger.error("cannot start", extra={FIELDS_ATTRIBUTE: {"error": str(error)}})
        sys.exit(f"{description} cannot start: {error}")
    finally:
        shutdown_tracing()


def run(main: Callable[[], Awaitable[None]], *, event_loop: str = "auto") -> None:
    """Run a service's main coroutine to completion, on the event loop chosen
    (see service_runtime.event_loop): the body of each service's __main__."""

    async def main_coroutine() -> None:
        await main()

    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        runner.run(main_coroutine())


async def _first_signal(
    signals_received: asyncio.Queue[signal.Signals], server: RunningServer
) -> signal.Signals | None:
    waiting = asyncio.ensure_future(signals_received.get())
    terminated = asyncio.ensure_future(server.wait_for_termination())
    done, pending = await asyncio.wait({waiting, terminated}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return waiting.result() if waiting in done else None


async def _cut_grace_on_signal(
    signals_received: asyncio.Queue[signal.Signals], server: RunningServer
) -> None:
    again = await signals_received.get()
    logger.warning(
        "second signal: cutting the grace period",
        extra={FIELDS_ATTRIBUTE: {"signal": again.name}},
    )
    await server.stop(0)


def _address(host: str, port: int) -> str:
    # An IPv6 literal needs brackets to keep its colons apart from the port's.
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"
