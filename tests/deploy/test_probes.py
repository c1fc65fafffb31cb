"""Playing the kubelet: the probes of deploy/k8s, asked as the kubelet asks them,
of the services as real processes, through start-up, normal running, an outage
of a downstream, and SIGTERM.

The kubelet's gRPC prober opens a fresh connection for every probe, calls
grpc.health.v1.Health/Check with the probe's `service` (or ""), with the probe's
timeoutSeconds as the deadline, and counts SERVING as success and anything else,
a status or an error, as failure. It speaks no TLS: the manifests point every
probe at the service's plaintext health port (`--health-port`, serving
grpc.health.v1 alone), and so does this kubelet. The processes here listen on
ports of their own rather than the manifests' (those the manifest tests check),
a main port and a health port each, and a probe goes to whichever of the two
the manifest's probe names: everything else about the probes is read from the
manifests.
"""

import asyncio
import contextlib
import random
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from deploy_model import PROCESSOR, QUOTE, REQUESTOR, SERVICES, Manifests, Service
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.polling import poll
from support.quote_harness import submission
from support.service_process import Launched, running_service

from quoteflow.processor.v1 import processor_service_pb2, processor_service_pb2_grpc
from quoteflow.quote.v1 import quote_service_pb2, quote_service_pb2_grpc
from quoteflow.requestor.v1 import requestor_service_pb2, requestor_service_pb2_grpc

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
#: What a probe of a closed port gets.
REFUSED = grpc.StatusCode.UNAVAILABLE.name
#: How long a transition may take: a dependent checks its downstream every
#: 0.05 s here, and reconnects to one that came back within 2 s.
TRANSITION_SECONDS = 10.0
PROBES = ("startup", "liveness", "readiness")


async def probe(address: str, spec: dict[str, Any]) -> str:
    """One probe as the kubelet makes it, in plaintext; the status's name, or
    the error's code."""
    options = [("grpc.primary_user_agent", "kube-probe/1.33")]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        request = health_pb2.HealthCheckRequest(service=spec["grpc"].get("service", ""))
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                request, timeout=spec["timeoutSeconds"]
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


@dataclass
class Pod:
    """A service's process, probed with the probes of its Deployment."""

    service: Service
    process: Launched
    probes: dict[str, dict[str, Any]]
    data_dir: Path
    #: The manifest's container port → the port this process has in its stead.
    ports: dict[int, int]

    def address(self, kind: str) -> str:
        """Where the kubelet sends the `kind` probe: the port the manifest names."""
        host = self.process.address.rpartition(":")[0]
        return f"{host}:{self.ports[self.probes[kind]['grpc']['port']]}"

    async def probe(self, kind: str) -> str:
        return await probe(self.address(kind), self.probes[kind])

    async def statuses(self) -> dict[str, str]:
        return {kind: await self.probe(kind) for kind in PROBES}


async def becomes(
    pod: Pod,
    kind: str,
    wanted: str,
    *,
    alive: Sequence[Pod] = (),
    within: float = TRANSITION_SECONDS,
) -> None:
    """Probe until pod's `kind` probe answers wanted; meanwhile every pod in alive
    must pass its liveness probe every time. Fails after `within` seconds."""

    async def probe_all() -> str:
        for other in alive:
            assert await other.probe("liveness") == SERVING, f"{other.service.name} died"
        return await pod.probe(kind)

    await poll(
        probe_all,
        wanted.__eq__,
        f"{pod.service.name}'s {kind} probe {wanted}",
        within=within,
        every=0.02,
    )


def _ports_never_picked_by_the_system() -> range:
    """Ports below the ephemeral range, from which the system picks the local
    port of every outgoing connection and of every bind to port 0. A service's
    port is taken from here, so that no connection (of any process) can take it
    while the service starts or restarts."""
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 49152
    return range(10_000, low)


def silent_port() -> socket.socket:
    """A listening socket that never answers: a downstream that is there but
    hung. Connecting to it succeeds; a call through it waits for its deadline."""
    for port in random.sample(_ports_never_picked_by_the_system(), 100):
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        listener.listen()
        return listener
    raise AssertionError("no free port below the ephemeral range")


class Cluster:
    """Starts services as `python -m` processes, on given ports (a main port
    and a health port each) and data directories, with their Deployments'
    probes; stops them all at the end."""

    def __init__(self, stack: contextlib.AsyncExitStack, manifests: Manifests, root: Path) -> None:
        self._stack = stack
        self._manifests = manifests
        self._root = root
        # Until a service first starts, its port answers nothing: so its clients,
        # started before it, wait on their first check of it rather than fail it
        # at once, and a dependent must say NOT_SERVING before any check ends.
        self._silent = {s.name: stack.enter_context(silent_port()) for s in SERVICES}
        self.ports = {name: s.getsockname()[1] for name, s in self._silent.items()}
        # The health ports, held the same way until each service first starts:
        # no other connection can take one meanwhile, and a restart finds it free.
        self._silent_health = {s.name: stack.enter_context(silent_port()) for s in SERVICES}
        self.health_ports = {n: s.getsockname()[1] for n, s in self._silent_health.items()}
        #: The last process started for each service.
        self.started: dict[str, Pod] = {}

    async def start(self, service: Service) -> Pod:
        """Start service on its port (and its database, if it ran before)."""
        if service.name in self._silent:
            self._silent.pop(service.name).close()
            self._silent_health.pop(service.name).close()
        args = ["--health-port", str(self.health_ports[service.name])]
        if service.downstream is not None:
            field, downstream = service.downstream
            address = f"127.0.0.1:{self.ports[downstream]}"
            args += [f"--{field.replace('_', '-')}", address, "--health-interval", "0.05"]
        data_dir = self._root / service.name
        # Every call, each probe too, logs a line on stderr, which the launcher
        # reads for as long as the service runs.
        process = await self._stack.enter_async_context(
            running_service(service.module, *args, data_dir=data_dir, port=self.ports[service.name])
        )
        probes = {kind: self._manifests.probe(service, kind) for kind in PROBES}
        ports = {
            _container_port(self._manifests, service, "grpc"): self.ports[service.name],
            _container_port(self._manifests, service, "health"): self.health_ports[service.name],
        }
        self.started[service.name] = Pod(service, process, probes, data_dir, ports)
        return self.started[service.name]


def _container_port(manifests: Manifests, service: Service, name: str) -> int:
    (port,) = [p for p in manifests.container(service)["ports"] if p["name"] == name]
    number: int = port["containerPort"]
    return number


@contextlib.asynccontextmanager
async def cluster(manifests: Manifests, root: Path) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        yield Cluster(stack, manifests, root)


async def test_readiness_follows_start_up_and_the_downstreams(manifests, tmp_path) -> None:
    async with cluster(manifests, tmp_path) as pods:
        # Start-up, the last first: each is alive at once, ready only once its
        # downstream is ready.
        requestor = await pods.start(REQUESTOR)
        assert await requestor.statuses() == {
            "startup": SERVING,
            "liveness": SERVING,
            "readiness": NOT_SERVING,
        }
        processor = await pods.start(PROCESSOR)
        assert await processor.statuses() == {
            "startup": SERVING,
            "liveness": SERVING,
            "readiness": NOT_SERVING,
        }
        # The processor answers, but is not ready: neither is the requestor.
        assert await requestor.probe("readiness") == NOT_SERVING
        quote = await pods.start(QUOTE)
        # Nothing downstream: ready as soon as it listens.
        assert set((await quote.statuses()).values()) == {SERVING}
        await becomes(processor, "readiness", SERVING, alive=[requestor, processor])
        await becomes(requestor, "readiness", SERVING, alive=[requestor, processor])

        # Running: every probe of every pod passes.
        for pod in (quote, processor, requestor):
            assert set((await pod.statuses()).values()) == {SERVING}, pod.service.name
            # Asked of the health port, as the manifest says: never the main one.
            health = f"127.0.0.1:{pods.health_ports[pod.service.name]}"
            assert {pod.address(kind) for kind in PROBES} == {health}
        # The health port serves health and nothing else: it has no TLS.
        async with grpc.aio.insecure_channel(quote.address("liveness")) as channel:
            stats = quote_service_pb2_grpc.QuoteServiceStub(channel).GetStats
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stats(quote_service_pb2.GetStatsRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED

        # The quote service goes away: the processor is not ready, nor (its
        # downstream not ready) the requestor; both stay alive.
        assert await quote.process.stop(signal.SIGTERM) == 0
        assert await quote.probe("liveness") == REFUSED
        await becomes(processor, "readiness", NOT_SERVING, alive=[requestor, processor])
        await becomes(requestor, "readiness", NOT_SERVING, alive=[requestor, processor])
        # It comes back, on its port and its database: both are ready again.
        quote = await pods.start(QUOTE)
        await becomes(processor, "readiness", SERVING, alive=[requestor, processor, quote])
        await becomes(requestor, "readiness", SERVING, alive=[requestor, processor, quote])

        # The processor goes away: the requestor is not ready, but alive.
        assert await processor.process.stop(signal.SIGTERM) == 0
        await becomes(requestor, "readiness", NOT_SERVING, alive=[requestor])
        processor = await pods.start(PROCESSOR)
        await becomes(requestor, "readiness", SERVING, alive=[requestor, processor, quote])
        for pod in (quote, processor, requestor):
            assert set((await pod.statuses()).values()) == {SERVING}, pod.service.name


@contextlib.contextmanager
def database_locked(path: Path) -> Iterator[None]:
    """Hold the database's write lock, as a slow disk would: the service's
    commits wait (SQLite's busy timeout, 5 s) until the block ends."""
    assert path.exists(), path
    database = sqlite3.connect(path, isolation_level=None)
    try:
        database.execute("BEGIN IMMEDIATE")
        yield
        database.execute("ROLLBACK")
    finally:
        database.close()


async def hold_quote(pods: Cluster, channel: grpc.aio.Channel) -> asyncio.Future[object]:
    """SubmitQuote: it commits the message before answering. Nothing shows it
    in flight before that, so: GetStats, sent after it on the same connection,
    is answered only once the server has taken both calls, in order."""
    stub = quote_service_pb2_grpc.QuoteServiceStub(channel)
    # Connected first: calls made before a connection is up may start in any order.
    await channel.channel_ready()
    call = asyncio.ensure_future(
        stub.SubmitQuote(quote_service_pb2.SubmitQuoteRequest(submission=submission()))
    )
    await stub.GetStats(quote_service_pb2.GetStatsRequest())
    return call


async def hold_processor(pods: Cluster, channel: grpc.aio.Channel) -> asyncio.Future[object]:
    """SubmitProposal: it queues the proposal's quote in the quote service (which
    then counts it), then commits the acceptance before answering."""
    stub = processor_service_pb2_grpc.ProcessorServiceStub(channel)
    request = processor_service_pb2.SubmitProposalRequest(
        order_req_id="ORD-1", proposal_id="P-1", submission=submission()
    )
    call = asyncio.ensure_future(stub.SubmitProposal(request))
    async with grpc.aio.insecure_channel(pods.started["quote"].process.address) as quote:
        stats = quote_service_pb2_grpc.QuoteServiceStub(quote).GetStats
        await poll(
            lambda: stats(quote_service_pb2.GetStatsRequest()),
            lambda s: s.pending_count + s.processing_count + s.completed_count == 1,
            "the proposal's quote",
        )
    return call


async def hold_requestor(pods: Cluster, channel: grpc.aio.Channel) -> asyncio.Future[object]:
    """PlaceOrder: it commits the task before answering. Nothing shows it in
    flight before that, so: a health check, sent after it on the same
    connection, is answered only once the server has taken both calls, in
    order. Not GetStats: that may read the locked database, and wait out its
    busy timeout."""
    stub = requestor_service_pb2_grpc.RequestorServiceStub(channel)
    # Connected first: calls made before a connection is up may start in any order.
    await channel.channel_ready()
    call = asyncio.ensure_future(
        stub.PlaceOrder(requestor_service_pb2.PlaceOrderRequest(order_req_id="ORD-1"))
    )
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    return call


#: The file each service's held call commits to.
COMMITTED_TO = {
    "quote": "quote-jobs.sqlite3",
    "processor": "processor-logs.sqlite3",
    "requestor": "requestor-jobs.sqlite3",
}

#: For each service: start a call that commits, so waits while the database
#: is locked, and return it once the server has it in hand.
HOLDS: dict[str, Callable[[Cluster, grpc.aio.Channel], Awaitable[asyncio.Future[object]]]] = {
    "quote": hold_quote,
    "processor": hold_processor,
    "requestor": hold_requestor,
}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
async def test_sigterm_turns_readiness_off_at_once_then_the_port_closes(
    manifests, tmp_path, service
) -> None:
    async with cluster(manifests, tmp_path) as pods:
        # The service and what it depends on, each ready before the next starts.
        for each in SERVICES[: SERVICES.index(service) + 1]:
            pod = await pods.start(each)
            await becomes(pod, "readiness", SERVING)
        async with grpc.aio.insecure_channel(pod.process.address) as channel:
            with database_locked(pod.data_dir / COMMITTED_TO[service.name]):
                # A call in flight holds the drain open (for up to the grace).
                in_flight = await HOLDS[service.name](pods, channel)
                assert not in_flight.done()
                pod.process.process.send_signal(signal.SIGTERM)
                # At once: well before the kubelet's next readiness probe.
                within = 2.0
                assert within < pod.probes["readiness"]["periodSeconds"]
                await becomes(pod, "readiness", NOT_SERVING, alive=[pod], within=within)
                # And so it stays while the drain lasts; the process is alive.
                # Once: the lock must be let go well within the service's 5 s
                # busy timeout, or the held commit fails on a loaded machine.
                assert await pod.probe("readiness") == NOT_SERVING
                assert await pod.probe("liveness") == SERVING
                assert pod.process.process.returncode is None
                assert not in_flight.done()
            # The commit goes through: the call had its grace, and succeeds.
            await in_flight
        async with asyncio.timeout(TRANSITION_SECONDS):
            assert await pod.process.process.wait() == 0
        # The port is closed: every probe fails.
        for kind in PROBES:
            assert await pod.probe(kind) == REFUSED
